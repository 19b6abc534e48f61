// Hostile input through the library and the SQL API: injection attempts, NUL, broken UTF-16,
// invalid JSON, deep nesting, 10 MB payloads, unknown ids, malformed durations. Each is refused
// with a clear error or stored verbatim; nothing is executed, nothing half-written, and a worker
// handling the stored ones keeps running.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CrierError, type CrierEvent, type Duration } from '../src/index.ts';
import { createCrier } from './support/history.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/database.ts';

const crier = createCrier();
let db: TestDatabase;

const injections = [
  "'; DROP TABLE crier.events; --",
  "order.created'); DELETE FROM crier.deliveries; --",
  '$$; DROP SCHEMA crier CASCADE; $$',
  '"; DROP TABLE canary; --',
  "a' OR '1'='1",
  "order.*' OR 1=1 --",
  "#'); TRUNCATE canary; --",
  '%s%n%x',
  '{"a":1}',
  "E'\\x27'; SELECT pg_sleep(10); --",
];

before(async () => {
  db = await createTestDatabase('hostile');
  await db.sql`CREATE TABLE canary (alive boolean)`;
  await db.sql`INSERT INTO canary VALUES (true)`;
});
after(async () => {
  await db.drop();
});

const countEvents = async () => Number((await db.sql`SELECT count(*) AS n FROM crier.events`)[0]!.n);

async function expectCode(promise: Promise<unknown>, code: string, what: string) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof CrierError, `${what}: expected a CrierError, got ${String(error)}`);
    assert.equal(error.code, code, `${what}: ${error.message}`);
    return true;
  });
}

async function assertIntact() {
  assert.deepEqual([...(await db.sql`SELECT alive FROM canary`)].map((r) => r.alive), [true]);
  const [tables] = await db.sql`SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'crier'`;
  assert.ok(tables!.n >= 6, 'crier tables still there');
}

test('injection strings as topics are refused, from TypeScript and from SQL', async () => {
  const before = await countEvents();
  for (const topic of injections) {
    await expectCode(crier.publish(db.sql, topic, {}), 'CRIER_INVALID_TOPIC', topic);
    await assert.rejects(db.sql`SELECT crier.publish(${topic}, '{}')`, /CRIER_INVALID_TOPIC: E?'.*' is not a valid topic/s);
  }
  assert.equal(await countEvents(), before);
  await assertIntact();
});

test('injection strings as patterns and subscription names are refused; claim names them quoted', async () => {
  for (const bad of injections) {
    const pattern = () => crier.worker({ connection: db.url, logger: false, subscriptions: [{ name: 'ok', topics: [bad], handler: () => {} }] });
    assert.throws(pattern, (e: unknown) => e instanceof CrierError && e.code === 'CRIER_INVALID_PATTERN', bad);
    const name = () => crier.worker({ connection: db.url, logger: false, subscriptions: [{ name: bad, topics: ['#'], handler: () => {} }] });
    assert.throws(name, (e: unknown) => e instanceof CrierError && e.code === 'CRIER_INVALID_OPTION', bad);
    // Straight into the table, the constraints refuse them too.
    await assert.rejects(db.sql`INSERT INTO crier.subscriptions (name, topics) VALUES ('ok', ${[bad]})`, { code: '23514' });
    await assert.rejects(db.sql`INSERT INTO crier.subscriptions (name, topics) VALUES (${bad}, '{#}')`, { code: '23514' });
    await assert.rejects(
      db.sql`SELECT * FROM crier.claim(${bad}, 'w', 1)`,
      /CRIER_UNKNOWN_SUBSCRIPTION: no subscription E?'/,
    );
  }
  assert.equal((await db.sql`SELECT count(*)::int AS n FROM crier.subscriptions`)[0]!.n, 0);
  await assertIntact();
});

test('injection strings as keys, header names, header values and payloads are stored verbatim', async () => {
  const events = injections.map((s, i) => ({
    topic: 'hostile.text',
    key: s,
    headers: { [s]: s, correlationId: s },
    payload: { [s]: [s, i] },
  }));
  const published = await db.sql.begin((tx) => crier.publishMany(tx, events));
  const rows = await db.sql`SELECT key, headers, payload FROM crier.events WHERE id = ANY (${published.map((p) => p.id)}::bigint[]) ORDER BY id`;
  assert.deepEqual(rows.map((r) => ({ ...r })), events.map((e) => ({ key: e.key, headers: e.headers, payload: e.payload })));
  // The same through crier.publish in SQL.
  for (const s of injections) {
    const [{ id }] = (await db.sql`SELECT crier.publish('hostile.sql', ${JSON.stringify({ s })}::text::jsonb, ${s}, ${JSON.stringify({ [s]: s })}::text::jsonb) AS id`) as unknown as [{ id: string }];
    const [row] = await db.sql`SELECT key, payload, headers FROM crier.events WHERE id = ${id}`;
    assert.deepEqual({ ...row }, { key: s, payload: { s }, headers: { [s]: s } });
  }
  await assertIntact();
});

test('NUL characters are refused with a specific code wherever they appear', async () => {
  const before = await countEvents();
  await expectCode(crier.publish(db.sql, 'hostile.nul', { s: 'a\u0000b' }), 'CRIER_INVALID_PAYLOAD', 'payload');
  await expectCode(crier.publish(db.sql, 'hostile.nul', { ['a\u0000']: 1 }), 'CRIER_INVALID_PAYLOAD', 'payload key');
  await expectCode(crier.publish(db.sql, 'hostile.nul', {}, { headers: { h: '\u0000' } }), 'CRIER_INVALID_HEADERS', 'header');
  await expectCode(crier.publish(db.sql, 'hostile\u0000.nul', {}), 'CRIER_INVALID_TOPIC', 'topic');
  // An escaped backslash followed by "u0000" is text, not NUL: stored verbatim.
  const [ok] = await db.sql.begin((tx) => crier.publishMany(tx, [{ topic: 'hostile.nul', payload: { s: '\\u0000' } }]));
  assert.deepEqual((await db.sql`SELECT payload FROM crier.events WHERE id = ${ok!.id}`)[0]!.payload, { s: '\\u0000' });
  // From SQL, jsonb itself refuses \u0000.
  await assert.rejects(db.sql`SELECT crier.publish('hostile.nul', ${'{"s":"\\u0000"}'}::text::jsonb)`, { code: '22P05' });
  assert.equal(await countEvents(), before + 1);
});

test('NUL in a key is refused with CRIER_INVALID_KEY', async () => {
  const before = await countEvents();
  await expectCode(crier.publish(db.sql, 'hostile.nul', {}, { key: 'a\u0000b' }), 'CRIER_INVALID_KEY', 'key');
  assert.equal(await countEvents(), before);
});

test('lone UTF-16 surrogates (invalid UTF-8 once encoded) are refused with a specific code', async () => {
  const before = await countEvents();
  await expectCode(crier.publish(db.sql, 'hostile.utf', { s: 'a\ud800b' }), 'CRIER_INVALID_PAYLOAD', 'payload');
  await expectCode(crier.publish(db.sql, 'hostile.utf', {}, { headers: { h: '\udc00' } }), 'CRIER_INVALID_HEADERS', 'header');
  await expectCode(crier.publish(db.sql, 'hostile.utf', {}, { key: '\ud800' }), 'CRIER_INVALID_KEY', 'key');
  assert.equal(await countEvents(), before);
});

test('whatever the error, a failed publish writes nothing and leaves the transaction to the caller', async () => {
  const before = await countEvents();
  for (const bad of [{ key: 'a\u0000b' }, { key: '\ud800' }, { headers: { h: '\udc00' } }]) {
    await assert.rejects(db.sql.begin(async (tx) => {
      await crier.publish(tx, 'hostile.ok', { first: true });
      await crier.publish(tx, 'hostile.utf', {}, bad);
    }));
  }
  assert.equal(await countEvents(), before);
});

test('invalid JSON, unserialisable values and too-deep payloads are refused clearly', async () => {
  const before = await countEvents();
  await assert.rejects(db.sql`SELECT crier.publish('hostile.json', ${'{bad'}::text::jsonb)`, { code: '22P02' });
  await assert.rejects(db.sql`SELECT crier.publish('hostile.json', NULL)`, /CRIER_INVALID_PAYLOAD: payload is NULL/);
  await assert.rejects(db.sql`SELECT crier.publish('hostile.json', '{}', NULL, '[1]')`, /CRIER_INVALID_HEADERS/);
  const circular: Record<string, unknown> = {};
  circular.self = circular;
  await expectCode(crier.publish(db.sql, 'hostile.json', circular), 'CRIER_INVALID_PAYLOAD', 'circular');
  await expectCode(crier.publish(db.sql, 'hostile.json', { n: 1n }), 'CRIER_INVALID_PAYLOAD', 'bigint');
  await expectCode(crier.publish(db.sql, 'hostile.json', () => 1), 'CRIER_INVALID_PAYLOAD', 'function');
  await expectCode(crier.publish(db.sql, 'hostile.json', undefined), 'CRIER_INVALID_PAYLOAD', 'undefined');
  let deep: unknown[] = [];
  const root = deep;
  for (let i = 0; i < 100_000; i++) deep = (deep[0] = []) as unknown[];
  await expectCode(crier.publish(db.sql, 'hostile.json', root), 'CRIER_INVALID_PAYLOAD', '100k levels');
  assert.equal(await countEvents(), before);
});

const hostileButValid: { name: string; payload: unknown; key?: string; headers?: Record<string, string> }[] = [
  { name: '10 MB string', payload: { blob: 'x'.repeat(10 * 1024 * 1024) } },
  { name: '100k-element array', payload: Array.from({ length: 100_000 }, (_, i) => i) },
  { name: '500 levels deep', payload: JSON.parse('['.repeat(500) + ']'.repeat(500)) },
  { name: 'unicode everywhere', payload: { '🦆': 'ça va? 你好 مرحبا \u202e fdp \u0301', 'Ω≈ç√': ['𝔘𝔫𝔦𝔠𝔬𝔡𝔢'] }, key: 'ключ🔑', headers: { 'x-ünï': '👩‍👩‍👧' } },
  { name: 'JSON-looking string', payload: '{"not": "parsed"}' },
  { name: 'extreme numbers', payload: { big: 1.7976931348623157e308, tiny: 5e-324, neg: -1e-7, int: 9007199254740991 } },
];

test('large, deep and exotic payloads are stored verbatim and a worker handles them all, then carries on', async () => {
  const published = [];
  for (const item of hostileButValid) {
    const [event] = await db.sql.begin((tx) =>
      crier.publishMany(tx, [{ topic: 'hostile.valid', payload: item.payload, key: item.key, headers: item.headers }]),
    );
    published.push(event!);
  }
  const handled = new Map<string, CrierEvent>();
  const worker = crier.worker({
    connection: db.url,
    logger: false,
    handleSignals: false,
    pollInterval: '200ms',
    subscriptions: [{ name: 'hostile', topics: ['hostile.valid', 'hostile.after'], handler: (e) => void handled.set(e.id, e) }],
  });
  // The subscription exists from now on: publish the same events again for the worker to handle.
  await worker.start();
  try {
    const again = await db.sql.begin((tx) =>
      crier.publishMany(tx, hostileButValid.map((item) => ({ topic: 'hostile.valid', payload: item.payload, key: item.key, headers: item.headers }))),
    );
    const [last] = await crier.publishMany(db.sql, [{ topic: 'hostile.after', payload: { ok: true } }]);
    await eventually(() => handled.has(last!.id) && again.every((e) => handled.has(e.id)), 30_000, 'all handled');
    hostileButValid.forEach((item, i) => {
      const event = handled.get(again[i]!.id)!;
      assert.deepEqual(event.payload, item.payload, item.name);
      assert.equal(event.key, item.key ?? null, item.name);
      assert.deepEqual(event.headers, item.headers ?? {}, item.name);
    });
  } finally {
    await worker.stop();
  }
  for (const [i, event] of published.entries()) {
    const [row] = await db.sql`SELECT payload FROM crier.events WHERE id = ${event.id}`;
    assert.deepEqual(row!.payload, hostileButValid[i]!.payload, hostileButValid[i]!.name);
  }
  const [{ n }] = (await db.sql`SELECT count(*)::int AS n FROM crier.deliveries WHERE subscription = 'hostile' AND state <> 'done'`) as unknown as [{ n: number }];
  assert.equal(n, 0);
});

test('unknown ids and subscriptions: nothing happens, and it says so', async () => {
  assert.equal((await db.sql`SELECT * FROM crier.complete('w', '{999999, -1}', '{1, 1}')`).length, 0);
  assert.equal((await db.sql`SELECT * FROM crier.fail('w', '{999999}', '{1}', '{boom}', '{NULL}', '{f}')`).length, 0);
  assert.equal((await db.sql`SELECT * FROM crier.extend_leases('w', '{999999}', '{1}')`).length, 0);
  assert.equal((await db.sql`SELECT * FROM crier.release('w', '{999999}', '{1}')`).length, 0);
  await assert.rejects(db.sql`SELECT * FROM crier.claim('no-such-subscription', 'w', 1)`, /CRIER_UNKNOWN_SUBSCRIPTION: no subscription 'no-such-subscription'/);
  // Arrays of different lengths: unnest pads with NULL, which matches no attempt.
  assert.equal((await db.sql`SELECT * FROM crier.complete('w', '{1,2}', '{1}')`).length, 0);
});

test('malformed durations and options are refused with CRIER_INVALID_OPTION', () => {
  const bad: unknown[] = ['ten seconds', '5 minutes', '-1s', '1y', '', ' ', 'NaN', -1, Number.NaN, Infinity, '1e3s', '30s; DROP TABLE canary'];
  for (const lease of bad) {
    assert.throws(
      () => crier.worker({ connection: db.url, logger: false, subscriptions: [{ name: 'd', topics: ['#'], lease: lease as Duration, handler: () => {} }] }),
      (e: unknown) => e instanceof CrierError && e.code === 'CRIER_INVALID_OPTION' && e.message.includes('lease'),
      String(lease),
    );
  }
  assert.throws(() => crier.worker({ connection: db.url, logger: false, subscriptions: [{ name: 'd', topics: ['#'], concurrency: 0, handler: () => {} }] }), /CRIER_INVALID_OPTION/);
  assert.throws(() => crier.worker({ connection: db.url, logger: false, subscriptions: [{ name: 'd', topics: ['#'], maxAttempts: 1.5, handler: () => {} }] }), /CRIER_INVALID_OPTION/);
  assert.throws(() => createCrier({ schema: 'crier; DROP TABLE canary' }), /CRIER_INVALID_OPTION/);
});
