// Property-based tests (fast-check): the TypeScript and SQL topic rules agree on every generated
// topic and pattern, both agree with a small reference matcher written here, and keys and headers
// are either stored verbatim or refused with a specific CrierError, never half-written.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { CrierError, isValidPattern, isValidTopic, topicMatches } from '../src/index.ts';
import { createCrier } from './support/history.ts';
import { MAX_KEY_BYTES, MAX_TOPIC_BYTES } from '../src/limits.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

const crier = createCrier();
let db: TestDatabase;

before(async () => {
  db = await createTestDatabase('properties');
});
after(async () => {
  await db.drop();
});

/** The AMQP rule, segment by segment: "*" is one segment, "#" zero or more. */
function referenceMatch(topic: readonly string[], pattern: readonly string[]): boolean {
  if (pattern.length === 0) return topic.length === 0;
  const [head, ...rest] = pattern;
  if (head === '#') return topic.some((_, k) => referenceMatch(topic.slice(k), rest)) || referenceMatch([], rest);
  if (topic.length === 0) return false;
  return (head === '*' || head === topic[0]) && referenceMatch(topic.slice(1), rest);
}

// Few distinct words, so that patterns and topics often meet.
const word = fc.constantFrom('a', 'b', 'order', 'x_1', 'A-b', '9');
const topicArb = fc.array(word, { minLength: 1, maxLength: 6 }).map((s) => s.join('.'));
const patternArb = fc
  .array(fc.oneof(word, fc.constant('*'), fc.constant('#')), { minLength: 1, maxLength: 6 })
  .map((s) => s.join('.'));

/** Strings near and far from the topic syntax, never containing NUL (Postgres text cannot hold it). */
const candidateArb = fc
  .oneof(
    fc.string({ unit: fc.constantFrom('a', 'Z', '9', '_', '-', '.', '*', '#', ' ', 'é', '/', "'", '\\') }),
    fc.string({ unit: 'grapheme', maxLength: 20 }),
    fc.string({ maxLength: 20 }),
    fc.integer({ min: 250, max: 260 }).map((n) => 'a'.repeat(n)),
    fc.integer({ min: 125, max: 130 }).map((n) => Array(n).fill('a').join('.')),
  )
  .filter((s) => !s.includes('\u0000'));

/** Evaluates a SQL boolean expression of $t/$p over many rows in one query. */
async function sqlBatch(expression: string, rows: readonly (readonly string[])[]): Promise<boolean[]> {
  const result = await db.sql.unsafe(
    `SELECT ${expression} AS ok FROM jsonb_array_elements($1::text::jsonb) WITH ORDINALITY AS r(v, n)
     CROSS JOIN LATERAL (SELECT r.v->>0 AS t, r.v->>1 AS p) x ORDER BY n`,
    [JSON.stringify(rows)],
  );
  return result.map((row) => row.ok as boolean);
}

test('topicMatches (TypeScript) = crier.topic_matches (SQL) = the reference matcher', async () => {
  let matched = 0;
  let total = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(fc.tuple(topicArb, patternArb), { minLength: 200, maxLength: 200 }), async (pairs) => {
      const inSql = await sqlBatch('crier.topic_matches(t, p)', pairs);
      pairs.forEach(([topic, pattern], i) => {
        const expected = referenceMatch(topic.split('.'), pattern.split('.'));
        assert.equal(topicMatches(topic, pattern), expected, `TS: ${topic} ~ ${pattern}`);
        assert.equal(inSql[i], expected, `SQL: ${topic} ~ ${pattern}`);
        matched += expected ? 1 : 0;
        total++;
      });
    }),
    { numRuns: 25 },
  );
  // The generators must produce both outcomes in quantity, or the property proves little.
  assert.ok(matched > total / 20 && matched < total * 0.95, `${matched} of ${total} pairs matched`);
});

test('routing (crier.resolve_routes) sends a topic to exactly the subscriptions with a matching pattern', async () => {
  let routed = 0;
  let total = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.array(patternArb, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 30 }),
      fc.uniqueArray(topicArb, { minLength: 1, maxLength: 30 }),
      async (subscriptions, topics) => {
        const routes = await db.sql.begin(async (tx) => {
          await tx`DELETE FROM crier.subscriptions`;
          for (const [i, patterns] of subscriptions.entries()) {
            await tx`INSERT INTO crier.subscriptions (name, topics) VALUES (${`s${i}`}, ${patterns})`;
          }
          return tx<{ topic: string; subscriptions: string[] }[]>`SELECT topic, subscriptions FROM crier.resolve_routes(${topics})`;
        });
        const byTopic = new Map(routes.map((r) => [r.topic, r.subscriptions]));
        for (const topic of topics) {
          const expected = subscriptions
            .flatMap((patterns, i) => (patterns.some((p) => referenceMatch(topic.split('.'), p.split('.'))) ? [`s${i}`] : []))
            .sort();
          assert.deepEqual(byTopic.get(topic), expected, `routes of ${topic}`);
          routed += expected.length;
          total += subscriptions.length;
        }
      },
    ),
    { numRuns: 40 },
  );
  await db.sql`DELETE FROM crier.subscriptions`;
  assert.ok(routed > total / 20 && routed < total * 0.95, `${routed} of ${total} topic x subscription pairs routed`);
});

test('topic and pattern validity agree between TypeScript and SQL', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(candidateArb, { minLength: 100, maxLength: 100 }), async (candidates) => {
      const rows = candidates.map((c) => [c, c]);
      const topics = await sqlBatch('crier.topic_valid(t)', rows);
      const patterns = await sqlBatch('crier.topic_pattern_valid(p)', rows);
      candidates.forEach((candidate, i) => {
        assert.equal(isValidTopic(candidate), topics[i], `topic ${JSON.stringify(candidate)}`);
        assert.equal(isValidPattern(candidate), patterns[i], `pattern ${JSON.stringify(candidate)}`);
      });
    }),
    { numRuns: 30 },
  );
});

test('a valid topic matches itself, "#" and its own prefix + ".#"; "*" only single segments', () => {
  fc.assert(
    fc.property(topicArb, (topic) => {
      assert.ok(topicMatches(topic, topic));
      assert.ok(topicMatches(topic, '#'));
      assert.ok(topicMatches(topic, `${topic.split('.')[0]}.#`));
      assert.equal(topicMatches(topic, '*'), !topic.includes('.'));
    }),
    { numRuns: 500 },
  );
});

test('topicMatches takes polynomial time on the worst patterns and agrees with SQL on them', async () => {
  // Many "#" (and "*") segments against long topics: a backtracking matcher takes exponential time
  // here (47 s for the first case). The bound is ~1,000x what the matcher needs, and the best of
  // three runs is timed, so a busy machine cannot break it.
  const topic = (n: number, last = 'a') => [...Array(n - 1).fill('a'), last].join('.');
  const cases: [string, string][] = [
    [topic(22), `${'#.'.repeat(12)}z`],
    [topic(22), `${'#.'.repeat(12)}a`],
    [topic(127), `${'#.'.repeat(127)}z`],
    [topic(127), `${'#.*.'.repeat(63)}z`],
    [topic(127, 'z'), `${'#.a.'.repeat(63)}z`],
    [topic(127), `${'*.#.'.repeat(63)}a`],
  ];
  const inSql = await sqlBatch('crier.topic_matches(t, p)', cases);
  cases.forEach(([t, p], i) => {
    assert.ok(isValidTopic(t) && isValidPattern(p), `case ${i} is valid input`);
    let best = Infinity;
    let result = false;
    for (let run = 0; run < 3; run++) {
      const started = performance.now();
      result = topicMatches(t, p);
      best = Math.min(best, performance.now() - started);
    }
    assert.equal(result, inSql[i], `case ${i}: TypeScript and SQL agree`);
    assert.ok(best < 50, `case ${i} (${t.split('.').length} segments vs ${p.length}-character pattern) took ${best.toFixed(1)} ms`);
  });
  assert.deepEqual(inSql, [false, true, false, false, true, true]);
});

/** Publishes one event; returns it as stored, or the CrierError. */
async function roundTrip(key: unknown, headers: unknown, payload: unknown) {
  try {
    const [published] = await db.sql.begin((tx) =>
      crier.publishMany(tx, [{ topic: 'prop.roundtrip', key: key as string, headers: headers as {}, payload }]),
    );
    const [row] = await db.sql`SELECT key, headers, payload FROM crier.events WHERE id = ${published!.id}`;
    return { stored: row! };
  } catch (error) {
    return { error };
  }
}

const countEvents = async () => Number((await db.sql`SELECT count(*) AS n FROM crier.events`)[0]!.n);

test('keys, headers and payloads are stored verbatim or refused with a specific code', async () => {
  const before = await countEvents();
  let stored = 0;
  const keyArb = fc.oneof(
    fc.string({ unit: 'grapheme', maxLength: 40 }),
    fc.string({ maxLength: 1100 }),
    fc.constant(null),
  );
  const headersArb = fc.dictionary(fc.string({ maxLength: 10 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 5 });
  await fc.assert(
    fc.asyncProperty(keyArb, headersArb, fc.jsonValue({ maxDepth: 4 }), async (key, headers, payload) => {
      const result = await roundTrip(key, headers, payload);
      const hasNul = (v: unknown) => JSON.stringify(v).includes('\\u0000');
      if ('error' in result) {
        assert.ok(result.error instanceof CrierError, `not a CrierError: ${String(result.error)}`);
        const expected =
          typeof key === 'string' && Buffer.byteLength(key) > MAX_KEY_BYTES ? 'CRIER_KEY_TOO_LONG'
          : payload === null ? 'CRIER_INVALID_PAYLOAD'
          : hasNul(payload) ? 'CRIER_INVALID_PAYLOAD'
          : 'CRIER_INVALID_HEADERS';
        assert.equal(result.error.code, expected, result.error.message);
        return;
      }
      stored++;
      assert.equal(result.stored.key, key);
      // JSON has no -0: compare with what JSON itself keeps.
      assert.deepEqual(result.stored.headers, JSON.parse(JSON.stringify(headers)));
      assert.deepEqual(result.stored.payload, JSON.parse(JSON.stringify(payload)));
    }),
    { numRuns: 150 },
  );
  assert.equal(await countEvents(), before + stored, 'every refused event left nothing behind');
  assert.ok(stored > 50, `only ${stored} of 150 generated events were storable`);
});

test('invalid topics, keys and headers of every type are refused before any SQL runs', async () => {
  const before = await countEvents();
  const notAString = fc.oneof(fc.integer(), fc.boolean(), fc.object(), fc.array(fc.string()), fc.constant(undefined));
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        candidateArb
          .filter((t) => !isValidTopic(t))
          .map((topic) => ({ topic, code: Buffer.byteLength(topic) > MAX_TOPIC_BYTES ? 'CRIER_TOPIC_TOO_LONG' : 'CRIER_INVALID_TOPIC' })),
        fc.record({ topic: fc.constant('ok'), key: fc.oneof(fc.integer(), fc.boolean(), fc.object()), code: fc.constant('CRIER_INVALID_KEY') }),
        fc.record({ topic: fc.constant('ok'), key: fc.string({ unit: 'binary', minLength: 1025, maxLength: 1100 }), code: fc.constant('CRIER_KEY_TOO_LONG') }),
        fc.record({ topic: fc.constant('ok'), headers: fc.oneof(fc.array(fc.jsonValue()), fc.string(), fc.integer()), code: fc.constant('CRIER_INVALID_HEADERS') }),
        fc.record({ topic: fc.constant('ok'), headers: fc.record({ correlationId: notAString.filter((v) => v !== undefined) }), code: fc.constant('CRIER_INVALID_HEADERS') }),
        fc.record({ topic: notAString, code: fc.constant('CRIER_INVALID_TOPIC') }),
      ),
      async (input) => {
        const { code, ...event } = input as { code: string; topic: string; key?: string; headers?: {} };
        await assert.rejects(
          db.sql.begin((tx) => crier.publishMany(tx, [{ payload: {}, ...event }])),
          (error: unknown) => error instanceof CrierError && error.code === code,
        );
      },
    ),
    { numRuns: 200 },
  );
  assert.equal(await countEvents(), before);
});
