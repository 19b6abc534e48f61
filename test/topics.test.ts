// Topic routing rules, checked in TypeScript (src/topics.ts) and SQL (crier.topic_matches) from one
// table: the two implementations must agree on every row, or routing and the docs drift apart.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CrierError, isValidPattern, isValidTopic, topicMatches } from '../src/index.ts';
import { assertPattern, assertTopic } from '../src/topics.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase('topics');
});
after(async () => {
  await db.drop();
});

// [pattern, topic, matches]
const table: [string, string, boolean][] = [
  // literal patterns match themselves only, whole segments, case-sensitive
  ['order.created', 'order.created', true],
  ['order.created', 'order.created.v2', false],
  ['order.created', 'order', false],
  ['order', 'orders', false],
  ['order.created', 'Order.created', false],
  ['a.b', 'a.bc', false],
  // * is exactly one segment
  ['*', 'a', true],
  ['*', 'a.b', false],
  ['order.*', 'order.created', true],
  ['order.*', 'order', false],
  ['order.*', 'order.created.v2', false],
  ['order.*', 'orders.created', false],
  ['*.created', 'order.created', true],
  ['*.created', 'created', false],
  ['*.*', 'a.b', true],
  ['*.*', 'a', false],
  ['*.*', 'a.b.c', false],
  ['a.*.c', 'a.b.c', true],
  ['a.*.c', 'a.c', false],
  ['a.*.c', 'a.b.b.c', false],
  ['a.*.c', 'a.b.d', false],
  // # is zero or more segments
  ['#', 'a', true],
  ['#', 'a.b.c.d', true],
  ['a.#', 'a', true],
  ['a.#', 'a.b', true],
  ['a.#', 'a.b.c', true],
  ['a.#', 'ab', false],
  ['a.#', 'b.a', false],
  ['#.b', 'b', true],
  ['#.b', 'a.b', true],
  ['#.b', 'x.y.b', true],
  ['#.b', 'b.a', false],
  ['#.b', 'ab', false],
  ['a.#.b', 'a.b', true],
  ['a.#.b', 'a.x.y.b', true],
  ['a.#.b', 'a.b.c', false],
  ['#.#', 'a', true],
  ['#.#', 'a.b.c', true],
  ['*.#', 'a', true],
  ['*.#', 'a.b', true],
  ['#.*', 'a', true],
  ['*.*.#', 'a', false],
  ['*.*.#', 'a.b', true],
  ['#.a.#', 'x.a.y', true],
  ['#.a.#', 'x.b.y', false],
  // literal segments with "-", "_" and digits are plain characters, not regex syntax
  ['order-v2.*', 'order-v2.created', true],
  ['order-v2.*', 'orderxv2.created', false],
  ['user_profile.#', 'user_profile.updated.email', true],
  ['user_profile.#', 'userprofile.updated', false],
  ['a-b.c_d', 'a-b.c_d', true],
  ['v1.*', 'v1.2', true],
];

test('pattern matching table: TypeScript and SQL agree on every row', async () => {
  const rows = await db.sql<{ i: number; matches: boolean; pattern_valid: boolean; topic_valid: boolean }[]>`
    SELECT t.i::int AS i, crier.topic_matches(t.topic, t.pattern) AS matches,
           crier.topic_pattern_valid(t.pattern) AS pattern_valid, crier.topic_valid(t.topic) AS topic_valid
    FROM unnest(${table.map((r) => r[0])}::text[], ${table.map((r) => r[1])}::text[]) WITH ORDINALITY AS t(pattern, topic, i)
    ORDER BY t.i`;
  assert.equal(rows.length, table.length);
  table.forEach(([pattern, topic, expected], i) => {
    const row = rows[i]!;
    const what = `${JSON.stringify(topic)} against ${JSON.stringify(pattern)}`;
    assert.ok(isValidPattern(pattern) && row.pattern_valid, `pattern ${pattern} is valid in TS and SQL`);
    assert.ok(isValidTopic(topic) && row.topic_valid, `topic ${topic} is valid in TS and SQL`);
    assert.equal(topicMatches(topic, pattern), expected, `TS: ${what}`);
    assert.equal(row.matches, expected, `SQL: ${what}`);
  });
});

const invalidPatterns = [
  '', '.', 'a.', '.a', 'a..b', 'a b', ' a', 'a ', 'a.*b', 'a*', '**', '#a', 'a.##', 'a/b', 'a+b', 'a$', '(a)',
  'ä', 'a\n', 'a\tb', 'x'.repeat(256),
];
const invalidTopics = [...invalidPatterns, 'order.*', 'order.#', '*', '#', 'a.*.c'];

test('invalid patterns are rejected by TS (CRIER_INVALID_PATTERN), SQL and the subscriptions table', async () => {
  assert.ok(isValidPattern('x'.repeat(255)), 'a 255-character pattern is still valid');
  for (const pattern of invalidPatterns) {
    const what = JSON.stringify(pattern);
    assert.equal(isValidPattern(pattern), false, `TS rejects pattern ${what}`);
    assert.throws(
      () => topicMatches('a', pattern),
      (error: unknown) => error instanceof CrierError && error.code === 'CRIER_INVALID_PATTERN',
      `topicMatches throws for ${what}`,
    );
    const [row] = await db.sql`SELECT crier.topic_pattern_valid(${pattern}) AS valid`;
    assert.equal(row!.valid, false, `SQL rejects pattern ${what}`);
    await assert.rejects(
      db.sql`INSERT INTO crier.subscriptions (name, topics) VALUES ('bad', ${[pattern]}::text[])`,
      /subscriptions_topics_valid/,
      `the subscriptions table refuses ${what}`,
    );
  }
  await assert.rejects(db.sql`INSERT INTO crier.subscriptions (name, topics) VALUES ('bad', '{}')`, /subscriptions_topics_valid/);
  const [count] = await db.sql`SELECT count(*)::int AS n FROM crier.subscriptions`;
  assert.equal(count!.n, 0);
});

test('invalid topics are rejected by TS and SQL alike', async () => {
  assert.ok(isValidTopic('x'.repeat(255)), 'a 255-character topic is still valid');
  for (const topic of invalidTopics) {
    const what = JSON.stringify(topic);
    assert.equal(isValidTopic(topic), false, `TS rejects topic ${what}`);
    const [row] = await db.sql`SELECT crier.topic_valid(${topic}) AS valid`;
    assert.equal(row!.valid, false, `SQL rejects topic ${what}`);
  }
  for (const notAString of [undefined, null, 42, {}, ['a']]) assert.equal(isValidTopic(notAString), false);
});

test('routing (crier.resolve_routes) agrees with the table: every pattern as a subscription', async () => {
  const patterns = [...new Set(table.map((r) => r[0]))];
  await db.sql.begin(async (tx) => {
    await tx`INSERT INTO crier.subscriptions (name, topics) SELECT 'p' || i, ARRAY[p] FROM unnest(${patterns}::text[]) WITH ORDINALITY AS t(p, i)`;
    const topics = [...new Set(table.map((r) => r[1]))];
    const routes = await tx<{ topic: string; subscriptions: string[] }[]>`SELECT topic, subscriptions FROM crier.resolve_routes(${topics})`;
    const byTopic = new Map(routes.map((r) => [r.topic, new Set(r.subscriptions.map((name) => patterns[Number(name.slice(1)) - 1]))]));
    for (const [pattern, topic, expected] of table) {
      assert.equal(byTopic.get(topic)!.has(pattern), expected, `${JSON.stringify(topic)} routed to ${JSON.stringify(pattern)}`);
    }
    await tx`DELETE FROM crier.subscriptions`;
  });
});

test('routing a new topic tests only the patterns that can match it, not every subscription', async () => {
  await db.sql.begin(async (tx) => {
    // 1,000 subscriptions whose patterns start with other words, and a few that are candidates.
    await tx`INSERT INTO crier.subscriptions (name, topics)
             SELECT 'svc' || i, ARRAY['svc' || i || '.*.created', 'svc' || i || '.#'] FROM generate_series(1, 1000) i`;
    await tx`INSERT INTO crier.subscriptions (name, topics) VALUES
             ('orders', '{orders.#}'), ('orders-or-svc', '{svc1.x,orders.*}'), ('any-created', '{#.created}'), ('audit', '{*.audit}')`;
    // Counts the calls of crier.topic_pattern_regex, which compiles each pattern tested (the costly part).
    await tx`SET LOCAL track_functions = 'all'`;
    const [routes] = await tx`SELECT subscriptions FROM crier.resolve_routes('{orders.created}')`;
    const [{ calls }] = (await tx`
      SELECT coalesce(pg_stat_get_xact_function_calls('crier.topic_pattern_regex(text)'::regprocedure), 0)::int AS calls`) as unknown as [{ calls: number }];
    assert.deepEqual(routes!.subscriptions, ['any-created', 'orders', 'orders-or-svc']);
    // The candidates' patterns: orders.#, orders.*, #.created and *.audit (svc1.x at most, as well).
    assert.ok(calls >= 4 && calls <= 5, `${calls} patterns tested for a new topic`);
    await tx`DELETE FROM crier.subscriptions`;
  });
});

test('an error quotes a long input cut short, with its length, on one line', () => {
  const cases = [
    ['a'.repeat(10_000), assertTopic, /^CRIER_TOPIC_TOO_LONG: the topic is 10000 bytes \(10000 characters\), over the limit of 255 bytes of UTF-8: "a{40}…" \(10000 characters\)$/],
    [`x\n${'y'.repeat(5000)}`, assertPattern, /^CRIER_INVALID_PATTERN: "x\\ny{62}…" \(5002 characters\) is not/],
  ] as const;
  for (const [input, check, expected] of cases) {
    assert.throws(() => check(input), (error: unknown) => {
      const message = (error as Error).message;
      assert.ok(message.length < 400 && !message.includes('\n'), `short, one line: ${message.length} characters`);
      assert.match(message, expected);
      return true;
    });
  }
});
