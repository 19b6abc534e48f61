// Size limits in bytes (src/limits.ts, db/sql/limits.sql): the library refuses a value past its
// limit before anything is sent, so the caller's transaction goes on; crier.publish and plain
// INSERTs into crier.events refuse it with the same code; values at the limit are stored, even in
// the indexes of ordered subscriptions. Messages never echo a huge value.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CrierError } from '../src/index.ts';
import { createCrier } from './support/history.ts';
import { MAX_HEADER_ID_BYTES, MAX_IDEMPOTENCY_KEY_BYTES, MAX_KEY_BYTES, MAX_TOPIC_BYTES } from '../src/limits.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

const crier = createCrier();
let db: TestDatabase;

before(async () => {
  db = await createTestDatabase('limits');
  // A name of the longest kind (100 characters), next to the key in the per-key indexes.
  await db.sql`INSERT INTO crier.subscriptions (name, topics, ordered) VALUES (${'o'.repeat(100)}, '{limits.#}', true)`;
});
after(async () => {
  await db.drop();
});

/**
 * n CJK characters (3 bytes each in UTF-8), varied so that Postgres cannot compress them below
 * the index limit (a repeated character would compress and hide the problem).
 */
function cjk(n: number, seed = 1): string {
  let x = seed;
  let s = '';
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    s += String.fromCodePoint(0x4e00 + (x % 20000));
  }
  return s;
}

const countEvents = async () => Number((await db.sql`SELECT count(*) AS n FROM crier.events`)[0]!.n);

/** Rejects with `code`, says the byte count and the limit, and does not echo the whole value. */
function tooLong(code: string, bytes: number, limit: number) {
  return (error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    assert.ok(message.startsWith(`${code}: `) || (error instanceof CrierError && error.code === code), message.slice(0, 300));
    assert.match(message, new RegExp(`${bytes} bytes \\(\\d+ characters\\), over the limit of ${limit} bytes`));
    assert.ok(message.length < 400, `the message is ${message.length} characters long: it echoes the value`);
    return true;
  };
}

test('the limits in TypeScript and in SQL are the same numbers', async () => {
  const [row] = await db.sql`
    SELECT crier.limit_bytes('topic') AS topic, crier.limit_bytes('key') AS key,
           crier.limit_bytes('idempotency key') AS idempotency_key, crier.limit_bytes('header id') AS header_id`;
  assert.deepEqual({ ...row }, {
    topic: MAX_TOPIC_BYTES,
    key: MAX_KEY_BYTES,
    idempotency_key: MAX_IDEMPOTENCY_KEY_BYTES,
    header_id: MAX_HEADER_ID_BYTES,
  });
});

test('a key of 1,024 CJK characters on an ordered subscription: CRIER_KEY_TOO_LONG, and the caller\'s transaction goes on', async () => {
  const before = await countEvents();
  const key = cjk(1024);
  const ids = await db.sql.begin(async (tx) => {
    const first = await crier.publish(tx, 'limits.ordered', { n: 1 }, { key: 'k1' });
    await assert.rejects(crier.publish(tx, 'limits.ordered', { n: 2 }, { key }), (error: unknown) => {
      assert.ok(error instanceof CrierError && error.code === 'CRIER_KEY_TOO_LONG', String(error));
      return tooLong('CRIER_KEY_TOO_LONG', 3072, MAX_KEY_BYTES)(error);
    });
    // The transaction is not aborted: it publishes again and commits.
    const second = await crier.publish(tx, 'limits.ordered', { n: 3 }, { key: 'k1' });
    return [first.id, second.id];
  });
  assert.equal(await countEvents(), before + 2);
  const rows = await db.sql`SELECT event_id::text AS id FROM crier.deliveries WHERE event_id = ANY (${ids}::bigint[]) ORDER BY event_id`;
  assert.deepEqual(rows.map((r) => r.id), ids);
});

test('keys, idempotency keys and header ids at their limits are stored, in the per-key indexes too', async () => {
  // 341 CJK characters and one letter: exactly 1,024 bytes; two events, so one waits behind the other.
  const key = cjk(341, 7) + 'k';
  const correlationId = cjk(341, 11) + 'c';
  const idempotencyKey = cjk(85, 13);
  assert.equal(Buffer.byteLength(key), MAX_KEY_BYTES);
  assert.equal(Buffer.byteLength(idempotencyKey), MAX_IDEMPOTENCY_KEY_BYTES);
  const published = await db.sql.begin((tx) =>
    crier.publishMany(tx, [
      { topic: 'limits.max', payload: {}, key, headers: { correlationId }, idempotencyKey },
      { topic: 'limits.max', payload: {}, key, headers: { correlationId } },
    ]),
  );
  const [{ n }] = (await db.sql`SELECT crier.publish(${'x'.repeat(MAX_TOPIC_BYTES)}, '{}', ${key}, ${db.sql.json({ correlationId })}, ${idempotencyKey}) AS n`) as unknown as [{ n: string }];
  assert.ok(n);
  const states = await db.sql`SELECT state FROM crier.deliveries WHERE event_id = ANY (${published.map((p) => p.id)}::bigint[]) ORDER BY event_id`;
  assert.deepEqual(states.map((r) => r.state), ['pending', 'waiting']);
});

test('crier.publish with a 10,000-character key: CRIER_KEY_TOO_LONG, nothing stored', async () => {
  const before = await countEvents();
  const key = 'k'.repeat(10_000);
  await assert.rejects(db.sql`SELECT crier.publish('limits.sql', '{}', ${key})`, tooLong('CRIER_KEY_TOO_LONG', 10_000, MAX_KEY_BYTES));
  await assert.rejects(db.sql`SELECT crier.publish('limits.ordered', '{}', ${cjk(1024)}, p_idempotency_key => 'i-1')`, tooLong('CRIER_KEY_TOO_LONG', 3072, MAX_KEY_BYTES));
  assert.equal(await countEvents(), before);
});

test('a plain INSERT into crier.events is held to the same limits', async () => {
  const before = await countEvents();
  await assert.rejects(
    db.sql`INSERT INTO crier.events (topic, key, payload) VALUES ('limits.insert', ${'k'.repeat(10_000)}, '{}')`,
    tooLong('CRIER_KEY_TOO_LONG', 10_000, MAX_KEY_BYTES),
  );
  await assert.rejects(
    db.sql`INSERT INTO crier.events (topic, key, payload) SELECT 'limits.ordered', k, '{}' FROM unnest(${['ok', cjk(400)]}::text[]) k`,
    tooLong('CRIER_KEY_TOO_LONG', 1200, MAX_KEY_BYTES),
  );
  await assert.rejects(
    db.sql`INSERT INTO crier.events (topic, payload, headers) VALUES ('limits.insert', '{}', ${db.sql.json({ correlationId: cjk(1000) })})`,
    tooLong('CRIER_HEADER_TOO_LONG', 3000, MAX_HEADER_ID_BYTES),
  );
  await assert.rejects(
    db.sql`INSERT INTO crier.events (topic, payload) VALUES (${'t'.repeat(10_000)}, '{}')`,
    tooLong('CRIER_TOPIC_TOO_LONG', 10_000, MAX_TOPIC_BYTES),
  );
  assert.equal(await countEvents(), before);
});

test('topics, idempotency keys and header ids past their limits: one specific code each, from TypeScript and SQL', async () => {
  const before = await countEvents();
  const cases: { code: string; bytes: number; limit: number; publish: () => Promise<unknown>; sql: () => Promise<unknown> }[] = [
    {
      code: 'CRIER_TOPIC_TOO_LONG', bytes: 10_000, limit: MAX_TOPIC_BYTES,
      publish: () => crier.publish(db.sql, 't'.repeat(10_000), {}),
      sql: () => db.sql`SELECT crier.publish(${'t'.repeat(10_000)}, '{}')`,
    },
    {
      code: 'CRIER_IDEMPOTENCY_KEY_TOO_LONG', bytes: 258, limit: MAX_IDEMPOTENCY_KEY_BYTES,
      publish: () => crier.publish(db.sql, 'limits.idem', {}, { idempotencyKey: cjk(86) }),
      sql: () => db.sql`SELECT crier.publish('limits.idem', '{}', p_idempotency_key => ${cjk(86)})`,
    },
    {
      code: 'CRIER_HEADER_TOO_LONG', bytes: 3000, limit: MAX_HEADER_ID_BYTES,
      publish: () => crier.publish(db.sql, 'limits.header', {}, { headers: { correlationId: cjk(1000) } }),
      sql: () => db.sql`SELECT crier.publish('limits.header', '{}', NULL, ${db.sql.json({ correlationId: cjk(1000) })})`,
    },
    {
      code: 'CRIER_HEADER_TOO_LONG', bytes: 1025, limit: MAX_HEADER_ID_BYTES,
      publish: () => crier.publish(db.sql, 'limits.header', {}, { headers: { causationId: 'c'.repeat(1025) } }),
      sql: () => db.sql`SELECT crier.publish('limits.header', '{}', NULL, ${db.sql.json({ causationId: 'c'.repeat(1025) })})`,
    },
  ];
  for (const c of cases) {
    await assert.rejects(c.publish(), (error: unknown) => {
      assert.ok(error instanceof CrierError && error.code === c.code, `${c.code}: ${String(error).slice(0, 300)}`);
      return tooLong(c.code, c.bytes, c.limit)(error);
    });
    await assert.rejects(c.sql(), tooLong(c.code, c.bytes, c.limit));
  }
  assert.equal(await countEvents(), before);
});
