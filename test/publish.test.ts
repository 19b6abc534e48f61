// Publishing: an event exists if and only if the caller's transaction commits (postgres.js, Drizzle
// or plain SQL), it fans out to exactly the matching subscriptions, bad input is refused with a
// specific code before anything is written, and producers send at most one short NOTIFY.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { drizzle } from 'drizzle-orm/postgres-js';
import { sql as drizzleSql } from 'drizzle-orm';
import postgres from 'postgres';
import { CrierError, type CrierErrorCode, type CrierEvent } from '../src/index.ts';
import { createCrier } from './support/history.ts';
import { fromDatabaseError } from '../src/errors.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/database.ts';

const crier = createCrier();
let db: TestDatabase;

before(async () => {
  db = await createTestDatabase('publish');
  await db.sql`CREATE TABLE orders (id int PRIMARY KEY)`;
  // Counts INSERT statements on crier.events, to prove that a batch is one statement. One row per
  // statement (not a counter row), so that concurrent publishers never wait on each other here.
  await db.sql.unsafe(`
    CREATE TABLE event_statements (at timestamptz DEFAULT clock_timestamp());
    CREATE FUNCTION count_event_statement() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO event_statements DEFAULT VALUES; RETURN NULL; END $$;
    CREATE TRIGGER count_event_statement AFTER INSERT ON crier.events
    FOR EACH STATEMENT EXECUTE FUNCTION count_event_statement();`);
});
after(async () => {
  await db.drop();
});

async function subscribe(name: string, topics: string[]) {
  await db.sql`INSERT INTO crier.subscriptions (name, topics) VALUES (${name}, ${topics}::text[])`;
}

/** Subscription names that got a delivery of each event, keyed by event id. */
async function deliveriesByEvent(eventIds: string[]): Promise<Map<string, string[]>> {
  const rows = await db.sql<{ event_id: string; subs: string[] }[]>`
    SELECT event_id::text, array_agg(subscription ORDER BY subscription) AS subs
    FROM crier.deliveries WHERE event_id = ANY (${eventIds}::bigint[]) GROUP BY event_id`;
  return new Map(rows.map((r) => [r.event_id, r.subs]));
}

async function countTopic(topicPrefix: string) {
  const [row] = await db.sql`
    SELECT (SELECT count(*)::int FROM crier.events WHERE topic LIKE ${topicPrefix + '%'}) AS events,
           (SELECT count(*)::int FROM crier.deliveries d JOIN crier.events e ON e.id = d.event_id
            WHERE e.topic LIKE ${topicPrefix + '%'}) AS deliveries`;
  return { events: row!.events as number, deliveries: row!.deliveries as number };
}

async function deliveriesFor(subscription: string): Promise<number> {
  const [row] = await db.sql`SELECT count(*)::int AS n FROM crier.deliveries WHERE subscription = ${subscription}`;
  return row!.n as number;
}

async function totals() {
  const [row] = await db.sql`
    SELECT (SELECT count(*)::int FROM crier.events) AS events, (SELECT count(*)::int FROM crier.deliveries) AS deliveries`;
  return { events: row!.events as number, deliveries: row!.deliveries as number };
}

async function eventStatements(): Promise<number> {
  const [row] = await db.sql`SELECT count(*)::int AS n FROM event_statements`;
  return row!.n as number;
}

describe('transactions', () => {
  before(async () => {
    await subscribe('tx-all', ['tx.#']);
  });

  test('postgres.js: rollback leaves no event and no delivery; commit leaves both', async () => {
    await assert.rejects(
      db.sql.begin(async (tx) => {
        await tx`INSERT INTO orders VALUES (1)`;
        await crier.publish(tx, 'tx.pg.rolledback', { order: 1 });
        throw new Error('business failure');
      }),
      /business failure/,
    );
    assert.deepEqual(await countTopic('tx.pg.'), { events: 0, deliveries: 0 });

    let seenOutside: number | undefined;
    const event = await db.sql.begin(async (tx) => {
      await tx`INSERT INTO orders VALUES (2)`;
      const published = await crier.publish(tx, 'tx.pg.committed', { order: 2 });
      // The outbox promise: another connection sees nothing until the business change commits.
      seenOutside = (await countTopic('tx.pg.')).events;
      return published;
    });
    assert.equal(seenOutside, 0);
    assert.deepEqual(await countTopic('tx.pg.'), { events: 1, deliveries: 1 });
    assert.deepEqual((await deliveriesByEvent([event.id])).get(event.id), ['tx-all']);
  });

  test('Drizzle transaction: commit publishes with the business row, rollback drops both', async () => {
    const orm = drizzle(db.sql);
    const committed = await orm.transaction(async (tx) => {
      await tx.execute(drizzleSql`INSERT INTO orders VALUES (10)`);
      return crier.publish(tx, 'tx.drizzle.committed', { order: 10 }, { key: '10' });
    });
    assert.match(committed.id, /^\d+$/);
    assert.equal(committed.topic, 'tx.drizzle.committed');
    assert.deepEqual((await deliveriesByEvent([committed.id])).get(committed.id), ['tx-all']);

    await assert.rejects(
      orm.transaction(async (tx) => {
        await tx.execute(drizzleSql`INSERT INTO orders VALUES (11)`);
        await crier.publish(tx, 'tx.drizzle.rolledback', { order: 11 });
        tx.rollback();
      }),
      /Rollback/,
    );
    assert.deepEqual(await countTopic('tx.drizzle.rolledback'), { events: 0, deliveries: 0 });
    const orders = await db.sql`SELECT id FROM orders WHERE id IN (10, 11) ORDER BY id`;
    assert.deepEqual(orders.map((r) => r.id), [10]);
  });

  test('SQL crier.publish in a plain SQL transaction returns the id and fans out; rollback writes nothing', async () => {
    const id = await db.sql.begin(async (tx) => {
      await tx.unsafe(`INSERT INTO orders VALUES (20)`);
      const [row] = await tx.unsafe(`SELECT crier.publish('tx.sql.committed', '{"order": 20}') AS id`);
      return String(row!.id);
    });
    assert.match(id, /^\d+$/);
    const [event] = await db.sql`SELECT topic, key, payload, headers FROM crier.events WHERE id = ${id}`;
    assert.deepEqual({ ...event }, { topic: 'tx.sql.committed', key: null, payload: { order: 20 }, headers: {} });
    assert.deepEqual((await deliveriesByEvent([id])).get(id), ['tx-all']);

    // Literal BEGIN / ROLLBACK on one connection, as a SQL user or another language would.
    const conn = await db.sql.reserve();
    try {
      await conn.unsafe('BEGIN');
      await conn.unsafe(`INSERT INTO orders VALUES (21)`);
      const [row] = await conn.unsafe(`SELECT crier.publish('tx.sql.rolledback', '{"order": 21}', '21') AS id`);
      assert.match(String(row!.id), /^\d+$/);
      await conn.unsafe('ROLLBACK');
      await conn.unsafe('BEGIN');
      await conn.unsafe(`SELECT crier.publish('tx.sql.committed', '{"order": 22}', '22', '{"correlationId": "c-22"}')`);
      await conn.unsafe('COMMIT');
    } finally {
      conn.release();
    }
    assert.deepEqual(await countTopic('tx.sql.rolledback'), { events: 0, deliveries: 0 });
    assert.deepEqual(await countTopic('tx.sql.committed'), { events: 2, deliveries: 2 });
    const [last] = await db.sql`SELECT key, headers FROM crier.events WHERE topic = 'tx.sql.committed' AND key = '22'`;
    assert.deepEqual(last!.headers, { correlationId: 'c-22' });
  });
});

describe('fan-out', () => {
  let declaredWorkerId: string;
  before(async () => {
    await subscribe('orders-all', ['shop.order.#']);
    await subscribe('orders-created', ['shop.order.created']);
    await subscribe('any-created', ['*.*.created']);
    await subscribe('payments', ['shop.payment.*']);
    // Two patterns that both match one topic must still give one delivery.
    await subscribe('shop-twice', ['shop.order.created', 'shop.#']);
    await subscribe('unrelated', ['warehouse.#']);
    // A subscription declared from code by a worker start, not inserted as a row.
    const worker = crier.worker({
      connection: db.url,
      handleSignals: false,
      logger: false,
      subscriptions: [{ name: 'declared', topics: ['shop.order.*'], handler: () => {} }],
    });
    declaredWorkerId = worker.id;
    await worker.start();
    await worker.stop();
  });

  const expected: Record<string, string[]> = {
    'shop.order.created': ['any-created', 'declared', 'orders-all', 'orders-created', 'shop-twice'],
    'shop.order.created.v2': ['orders-all', 'shop-twice'],
    'shop.order.cancelled': ['declared', 'orders-all', 'shop-twice'],
    'shop.payment.captured': ['payments', 'shop-twice'],
    'shop.payment.created': ['any-created', 'payments', 'shop-twice'],
    'blog.post.created': ['any-created'],
    'nobody.listens': [],
  };

  test('a committed event is delivered to every matching subscription and no other', async () => {
    const [declared] = await db.sql`SELECT topics FROM crier.subscriptions WHERE name = 'declared'`;
    assert.deepEqual(declared?.topics, ['shop.order.*'], `worker ${declaredWorkerId} declared its subscription`);
    for (const [topic, subscriptions] of Object.entries(expected)) {
      const event = await db.sql.begin((tx) => crier.publish(tx, topic, { topic }));
      assert.deepEqual((await deliveriesByEvent([event.id])).get(event.id) ?? [], subscriptions, topic);
      const [pending] = await db.sql`
        SELECT count(*)::int AS n FROM crier.deliveries
        WHERE event_id = ${event.id} AND state = 'pending' AND attempts = 0 AND worker IS NULL`;
      assert.equal(pending!.n, subscriptions.length, `${topic}: new deliveries are pending, unattempted`);
    }
  });

  test('publishMany writes a batch in ONE statement, in order, and fans out per event', async () => {
    const topics = Object.keys(expected);
    const inputs = Array.from({ length: 70 }, (_, n) => ({
      topic: topics[n % topics.length]!,
      payload: { n },
      key: `k${n % 3}`,
    }));
    const statementsBefore = await eventStatements();
    const published = await db.sql.begin((tx) => crier.publishMany(tx, inputs));
    assert.equal(await eventStatements(), statementsBefore + 1, 'one INSERT statement for the whole batch');

    assert.equal(published.length, inputs.length);
    assert.deepEqual(published.map((e) => e.topic), inputs.map((e) => e.topic), 'results in input order');
    const ids = published.map((e) => BigInt(e.id));
    for (let i = 1; i < ids.length; i++) assert.ok(ids[i]! > ids[i - 1]!, 'ids grow in input order');
    assert.equal(new Set(published.map((e) => e.uuid)).size, inputs.length);

    const rows = await db.sql`
      SELECT id::text, topic, key, payload FROM crier.events WHERE id = ANY (${published.map((e) => e.id)}::bigint[]) ORDER BY id`;
    assert.deepEqual(rows.map((r) => ({ topic: r.topic, payload: r.payload, key: r.key })), inputs);

    const byEvent = await deliveriesByEvent(published.map((e) => e.id));
    const perSubscription = new Map<string, number>();
    published.forEach((event) => {
      assert.deepEqual(byEvent.get(event.id) ?? [], expected[event.topic], `batch: ${event.topic}`);
      for (const s of expected[event.topic]!) perSubscription.set(s, (perSubscription.get(s) ?? 0) + 1);
    });
    const counted = await db.sql<{ subscription: string; n: number }[]>`
      SELECT subscription, count(*)::int AS n FROM crier.deliveries
      WHERE event_id = ANY (${published.map((e) => e.id)}::bigint[]) GROUP BY subscription`;
    assert.deepEqual(
      Object.fromEntries(counted.map((r) => [r.subscription, r.n])),
      Object.fromEntries(perSubscription),
    );
    assert.deepEqual(await db.sql.begin((tx) => crier.publishMany(tx, [])), [], 'an empty batch is a no-op');
  });

  // The client sends only the fields that differ from their defaults and gets back one row of ids:
  // what it returns must still be, event for event, what was stored.
  test('publishMany returns what was stored, event for event, whichever fields each event sets', async () => {
    const later = new Date(Date.now() + 3_600_000);
    const inputs = [
      { topic: 'returns.a', payload: { n: 0 } },
      { topic: 'returns.b', payload: { n: 1 }, key: 'k-1', headers: { tenant: 'acme' } },
      { topic: 'returns.a', payload: { n: 2 }, version: 3, deliverAt: later },
      { topic: 'returns.c', payload: [], key: '', headers: {}, delay: '1h' as const },
      { topic: 'returns.b', payload: { n: 4 }, headers: { correlationId: 'c-4' }, version: 1 },
    ];
    const published = await db.sql.begin((tx) => crier.publishMany(tx, inputs));
    const rows = await db.sql`
      SELECT id::text, uuid::text, topic, version, created_at, key, payload, headers, deliver_at
      FROM crier.events WHERE id = ANY (${published.map((e) => e.id)}::bigint[]) ORDER BY id`;
    assert.deepEqual(
      published,
      // Dates through new Date(): drizzle(db.sql), made by an earlier test, has the client read timestamptz as text.
      rows.map((r) => ({ id: r.id, uuid: r.uuid, topic: r.topic, version: r.version, createdAt: new Date(r.created_at), duplicate: false })),
    );
    assert.deepEqual(
      rows.map((r) => [r.key, r.payload, r.headers, r.deliver_at === null ? null : new Date(r.deliver_at) > new Date(Date.now() + 3_000_000)]),
      [
        [null, { n: 0 }, {}, null],
        ['k-1', { n: 1 }, { tenant: 'acme' }, null],
        [null, { n: 2 }, {}, true],
        ['', [], {}, true],
        [null, { n: 4 }, { correlationId: 'c-4' }, null],
      ],
    );
    assert.equal(new Date(rows[2]!.deliver_at).getTime(), later.getTime());
  });

  test('a subscription receives only events published after it exists, and follows topic changes', async () => {
    const before = await db.sql.begin((tx) => crier.publish(tx, 'late.thing', { n: 1 }));
    await subscribe('late', ['late.#']);
    const afterCreate = await db.sql.begin((tx) => crier.publish(tx, 'late.thing', { n: 2 }));
    await db.sql`UPDATE crier.subscriptions SET topics = '{other.#}' WHERE name = 'late'`;
    const afterRetarget = await db.sql.begin((tx) => crier.publish(tx, 'late.thing', { n: 3 }));
    await db.sql`UPDATE crier.subscriptions SET topics = '{late.thing}' WHERE name = 'late'`;
    const afterBack = await db.sql.begin((tx) => crier.publish(tx, 'late.thing', { n: 4 }));
    await db.sql`DELETE FROM crier.subscriptions WHERE name = 'late'`;
    const afterDelete = await db.sql.begin((tx) => crier.publish(tx, 'late.thing', { n: 5 }));
    const rows = await db.sql`
      SELECT e.payload->>'n' AS n FROM crier.deliveries d JOIN crier.events e ON e.id = d.event_id
      WHERE d.subscription = 'late' ORDER BY e.id`;
    assert.deepEqual(rows.map((r) => r.n), ['2', '4']);
    assert.equal(before.topic, afterDelete.topic);
    assert.ok(afterCreate && afterRetarget && afterBack);
  });

  // fan_out has a one-statement path for batches whose topics all have a cached route, and the
  // general path (routes resolved) otherwise: both give the same deliveries, in event order.
  test('a batch mixing topics with and without a cached route fans out like a fully cached one', async () => {
    await subscribe('mix-a', ['mix.a']);
    await subscribe('mix-all', ['mix.#']);
    await db.sql.begin((tx) => crier.publish(tx, 'mix.a', {})); // caches mix.a's route only
    const batch = ['mix.a', 'mix.b', 'mix.a', 'mix.none.x'].map((topic, n) => ({ topic, payload: { n } }));
    const deliveries = async (events: { id: string }[]) => {
      const rows = await db.sql<{ n: string; subscription: string }[]>`
        SELECT e.payload->>'n' AS n, d.subscription FROM crier.deliveries d JOIN crier.events e ON e.id = d.event_id
        WHERE d.event_id = ANY (${events.map((e) => e.id)}::bigint[]) ORDER BY d.id`;
      return rows.map((r) => `${r.n}:${r.subscription}`);
    };
    const mixed = await db.sql.begin((tx) => crier.publishMany(tx, batch));
    const cached = await db.sql.begin((tx) => crier.publishMany(tx, batch));
    const want = ['0:mix-a', '0:mix-all', '1:mix-all', '2:mix-a', '2:mix-all', '3:mix-all'];
    assert.deepEqual((await deliveries(mixed)).sort(), [...want].sort(), 'routes resolved in the statement');
    assert.deepEqual((await deliveries(cached)).sort(), [...want].sort(), 'every route cached');
    for (const events of [mixed, cached]) {
      const order = (await deliveries(events)).map((d) => d.split(':')[0]);
      assert.deepEqual(order, [...order].sort(), 'delivery ids follow event order');
    }
  });
});

describe('event contents', () => {
  test('key and headers are stored as given; a handler sees correlationId defaulting to the uuid', async () => {
    await subscribe('contents', ['contents.#']);
    const plain = await crier.publish(db.sql, 'contents.plain', { a: 1 });
    const rich = await crier.publish(db.sql, 'contents.rich', { a: [1, 'two', null, { deep: true }] }, {
      key: 'order-42',
      headers: { correlationId: 'corr-1', causationId: 'cause-1', tenant: 'acme', trace: { id: 7 } },
    });
    const literalBackslash = await crier.publish(db.sql, 'contents.plain', { s: '\\u0000 is not NUL', t: '\\ud800 neither', e: '', emoji: '😀' }, { key: 'ключ-😀' });
    const rows = await db.sql`SELECT id::text, uuid::text, key, payload, headers FROM crier.events WHERE topic LIKE 'contents.%' ORDER BY events.id`;
    assert.deepEqual(rows.map((r) => ({ ...r })), [
      { id: plain.id, uuid: plain.uuid, key: null, payload: { a: 1 }, headers: {} },
      {
        id: rich.id, uuid: rich.uuid, key: 'order-42', payload: { a: [1, 'two', null, { deep: true }] },
        headers: { correlationId: 'corr-1', causationId: 'cause-1', tenant: 'acme', trace: { id: 7 } },
      },
      {
        id: literalBackslash.id, uuid: literalBackslash.uuid, key: 'ключ-😀',
        payload: { s: '\\u0000 is not NUL', t: '\\ud800 neither', e: '', emoji: '😀' }, headers: {},
      },
    ]);

    const seen = new Map<string, CrierEvent>();
    const worker = crier.worker({
      connection: db.url,
      handleSignals: false,
      logger: false,
      subscriptions: [{ name: 'contents', topics: ['contents.#'], handler: (event) => void seen.set(event.id, event) }],
    });
    await worker.start();
    try {
      await eventually(() => seen.size === 3, 10_000, 'the worker saw all three events');
    } finally {
      await worker.stop();
    }
    const p = seen.get(plain.id)!;
    assert.equal(p.correlationId, plain.uuid, 'a conversation starts at the first event: correlationId = its uuid');
    assert.equal(p.causationId, null);
    assert.equal(p.key, null);
    assert.deepEqual(p.headers, {});
    const r = seen.get(rich.id)!;
    assert.equal(r.correlationId, 'corr-1');
    assert.equal(r.causationId, 'cause-1');
    assert.equal(r.key, 'order-42');
    assert.equal(r.uuid, rich.uuid);
    assert.equal(r.topic, 'contents.rich');
    assert.deepEqual(r.headers.trace, { id: 7 });
    assert.deepEqual(r.payload, { a: [1, 'two', null, { deep: true }] });
  });
});

describe('invalid input', () => {
  const circular: Record<string, unknown> = { a: 1 };
  circular.self = circular;
  const cases: [string, CrierErrorCode, () => Parameters<typeof crier.publishMany>[1][number]][] = [
    ['empty topic', 'CRIER_INVALID_TOPIC', () => ({ topic: '', payload: {} })],
    ['empty segment', 'CRIER_INVALID_TOPIC', () => ({ topic: 'a..b', payload: {} })],
    ['wildcard * in a topic', 'CRIER_INVALID_TOPIC', () => ({ topic: 'order.*', payload: {} })],
    ['wildcard # in a topic', 'CRIER_INVALID_TOPIC', () => ({ topic: 'order.#', payload: {} })],
    ['whitespace in a topic', 'CRIER_INVALID_TOPIC', () => ({ topic: 'order created', payload: {} })],
    ['leading space', 'CRIER_INVALID_TOPIC', () => ({ topic: ' order', payload: {} })],
    ['trailing newline', 'CRIER_INVALID_TOPIC', () => ({ topic: 'order\n', payload: {} })],
    ['topic too long', 'CRIER_TOPIC_TOO_LONG', () => ({ topic: 'x'.repeat(256), payload: {} })],
    ['topic not a string', 'CRIER_INVALID_TOPIC', () => ({ topic: 42 as unknown as string, payload: {} })],
    ['payload undefined', 'CRIER_INVALID_PAYLOAD', () => ({ topic: 'bad.in', payload: undefined })],
    ['payload null', 'CRIER_INVALID_PAYLOAD', () => ({ topic: 'bad.in', payload: null })],
    ['payload a function', 'CRIER_INVALID_PAYLOAD', () => ({ topic: 'bad.in', payload: () => 1 })],
    ['payload a BigInt', 'CRIER_INVALID_PAYLOAD', () => ({ topic: 'bad.in', payload: { n: 10n } })],
    ['payload circular', 'CRIER_INVALID_PAYLOAD', () => ({ topic: 'bad.in', payload: circular })],
    ['payload with NUL in a string', 'CRIER_INVALID_PAYLOAD', () => ({ topic: 'bad.in', payload: { s: 'a\u0000b' } })],
    ['payload with NUL in a property name', 'CRIER_INVALID_PAYLOAD', () => ({ topic: 'bad.in', payload: { ['a\u0000']: 1 } })],
    ['payload with escaped backslash then NUL', 'CRIER_INVALID_PAYLOAD', () => ({ topic: 'bad.in', payload: ['\\\u0000'] })],
    ['headers a string', 'CRIER_INVALID_HEADERS', () => ({ topic: 'bad.in', payload: {}, headers: 'x' as never })],
    ['headers an array', 'CRIER_INVALID_HEADERS', () => ({ topic: 'bad.in', payload: {}, headers: [] as never })],
    ['headers a number', 'CRIER_INVALID_HEADERS', () => ({ topic: 'bad.in', payload: {}, headers: 5 as never })],
    ['correlationId not a string', 'CRIER_INVALID_HEADERS', () => ({ topic: 'bad.in', payload: {}, headers: { correlationId: 1 as never } })],
    ['causationId not a string', 'CRIER_INVALID_HEADERS', () => ({ topic: 'bad.in', payload: {}, headers: { causationId: {} as never } })],
    ['headers with a BigInt', 'CRIER_INVALID_HEADERS', () => ({ topic: 'bad.in', payload: {}, headers: { n: 1n } })],
    ['headers with NUL', 'CRIER_INVALID_HEADERS', () => ({ topic: 'bad.in', payload: {}, headers: { x: '\u0000' } })],
    ['key a number', 'CRIER_INVALID_KEY', () => ({ topic: 'bad.in', payload: {}, key: 42 as never })],
    ['key an object', 'CRIER_INVALID_KEY', () => ({ topic: 'bad.in', payload: {}, key: {} as never })],
    ['key too long', 'CRIER_KEY_TOO_LONG', () => ({ topic: 'bad.in', payload: {}, key: 'k'.repeat(1025) })],
    ['key with NUL', 'CRIER_INVALID_KEY', () => ({ topic: 'bad.in', payload: {}, key: 'a\u0000b' })],
    // Half a surrogate pair: what `text.slice(0, n)` leaves when it cuts an emoji in two.
    ['payload with a lone high surrogate', 'CRIER_INVALID_PAYLOAD', () => ({ topic: 'bad.in', payload: { s: '😀'.slice(0, 1) } })],
    ['payload with a lone low surrogate', 'CRIER_INVALID_PAYLOAD', () => ({ topic: 'bad.in', payload: ['x\uDC00'] })],
    ['headers with a lone surrogate', 'CRIER_INVALID_HEADERS', () => ({ topic: 'bad.in', payload: {}, headers: { h: '\uD83D' } })],
    ['key with a lone surrogate', 'CRIER_INVALID_KEY', () => ({ topic: 'bad.in', payload: {}, key: 'k\uDBFF' })],
  ];

  test('each bad input gets its specific CrierError code and writes nothing, alone or in a batch', async () => {
    await subscribe('bad-input', ['#']);
    const start = await totals();
    for (const [what, code, make] of cases) {
      const isCode = (error: unknown) => {
        assert.ok(error instanceof CrierError, `${what}: a CrierError, got ${String(error)}`);
        assert.equal(error.code, code, `${what}: ${error.message}`);
        assert.ok(error.message.startsWith(`${code}: `), `${what}: message starts with the code`);
        return true;
      };
      const event = make();
      await assert.rejects(crier.publish(db.sql, event.topic, event.payload, event), isCode, what);
      await assert.rejects(
        crier.publishMany(db.sql, [{ topic: 'good.one', payload: {} }, make(), { topic: 'good.two', payload: {} }]),
        isCode,
        `${what} (in a batch)`,
      );
    }
    await assert.rejects(crier.publishMany(db.sql, [null as never]), (e: unknown) => e instanceof CrierError && e.code === 'CRIER_INVALID_PAYLOAD');
    assert.deepEqual(await totals(), start, 'nothing was written');
  });

  test('refused input does not spoil the caller transaction: the good events still commit', async () => {
    const codes: string[] = [];
    await db.sql.begin(async (tx) => {
      await crier.publish(tx, 'spoil.before', { n: 1 });
      for (const [, , make] of cases) {
        const event = make();
        await crier.publish(tx, event.topic, event.payload, event).catch((e: CrierError) => codes.push(e.code));
      }
      await crier.publish(tx, 'spoil.after', { n: 2 });
    });
    assert.equal(codes.length, cases.length);
    assert.deepEqual(await countTopic('spoil.'), { events: 2, deliveries: 2 });
  });

  test('SQL crier.publish refuses a bad topic, a NULL payload and non-object headers with CRIER_ codes', async () => {
    const start = await totals();
    const sqlCases: [string, CrierErrorCode][] = [
      [`SELECT crier.publish('a..b', '{}')`, 'CRIER_INVALID_TOPIC'],
      [`SELECT crier.publish('order.*', '{}')`, 'CRIER_INVALID_TOPIC'],
      [`SELECT crier.publish('', '{}')`, 'CRIER_INVALID_TOPIC'],
      [`SELECT crier.publish(NULL, '{}')`, 'CRIER_INVALID_TOPIC'],
      [`SELECT crier.publish(repeat('x', 256), '{}')`, 'CRIER_TOPIC_TOO_LONG'],
      [`SELECT crier.publish('ok.topic', NULL)`, 'CRIER_INVALID_PAYLOAD'],
      [`SELECT crier.publish('ok.topic', '{}', NULL, '[]')`, 'CRIER_INVALID_HEADERS'],
      [`SELECT crier.publish('ok.topic', '{}', NULL, NULL)`, 'CRIER_INVALID_HEADERS'],
    ];
    for (const [statement, code] of sqlCases) {
      await assert.rejects(
        db.sql.unsafe(statement),
        (error: unknown) => {
          assert.match((error as Error).message, new RegExp(`^${code}: `), statement);
          assert.equal((error as { code?: string }).code, '22023', statement);
          const mapped = fromDatabaseError(error);
          assert.ok(mapped instanceof CrierError && mapped.code === code, `${statement} maps to ${code}`);
          return true;
        },
        statement,
      );
    }
    // Writing the table directly cannot bypass the topic rule either.
    await assert.rejects(db.sql`INSERT INTO crier.events (topic, payload) VALUES ('a..b', '{}')`, /events_topic_valid/);
    assert.deepEqual(await totals(), start);
  });
});

describe('NOTIFY', () => {
  let listener: postgres.Sql;
  const received: string[] = [];
  let sentinels = 0;

  before(async () => {
    await subscribe('nfy-a', ['nfy.#']);
    await subscribe('nfy-b', ['nfy.b.*']);
    listener = postgres(db.url, { max: 1, onnotice: () => {} });
    await listener.listen('crier', (payload) => received.push(payload));
  });
  after(async () => {
    await listener.end({ timeout: 1 });
  });

  /**
   * Runs `publish` and returns the notifications it caused. A sentinel NOTIFY sent after the
   * publishing transactions committed arrives after theirs, so no sleeping is needed.
   */
  async function notificationsOf(publish: () => Promise<unknown>): Promise<string[]> {
    received.length = 0;
    await publish();
    const sentinel = `sentinel-${++sentinels}`;
    await db.sql`SELECT pg_notify('crier', ${sentinel})`;
    await eventually(() => received.includes(sentinel), 10_000, 'the sentinel notification');
    return received.slice(0, received.indexOf(sentinel));
  }

  const batch = (topic: string, n: number, payload: object = {}) =>
    db.sql.begin((tx) => crier.publishMany(tx, Array.from({ length: n }, () => ({ topic, payload }))));

  test('none while no worker of a receiving subscription is parked', async () => {
    const [parked] = await db.sql`SELECT count(*)::int AS n FROM crier.parked_workers`;
    assert.equal(parked!.n, 0, 'the worker that declared a subscription unparked on stop');
    assert.deepEqual(await notificationsOf(() => batch('nfy.x', 100)), []);
    assert.deepEqual(await notificationsOf(() => crier.publish(db.sql, 'nfy.b.x', {})), []);
    // A worker parked on another subscription does not make these producers notify.
    await db.sql`SELECT crier.park('w-other', '{contents}')`;
    assert.deepEqual(await notificationsOf(() => batch('nfy.x', 10)), []);
    await db.sql`SELECT crier.unpark('w-other', '{contents}')`;
  });

  test('one short notification per publishing statement, naming parked subscriptions only, once per park', async () => {
    // Parking again is what a worker does before it idles; it re-arms the wake-up.
    const parkA = () => db.sql`SELECT crier.park('w-a1', '{nfy-a}'), crier.park('w-a2', '{nfy-a}')`;
    await parkA();
    const secret = 'SECRET-PAYLOAD-MUST-NOT-TRAVEL';
    assert.deepEqual(await notificationsOf(() => batch('nfy.x', 100, { secret })), ['nfy-a'], 'a 100-event batch: one NOTIFY');
    // Woken means unparked: the rows are gone, so later producers find no parked worker at all
    // and skip crier.wake_parked (while a worker stayed marked, every publish called it in vain).
    const [left] = await db.sql`SELECT count(*)::int AS n FROM crier.parked_workers WHERE subscription = 'nfy-a'`;
    assert.equal(left!.n, 0, 'the woken workers no longer count as parked');
    assert.deepEqual(
      await notificationsOf(async () => {
        for (let i = 0; i < 3; i++) await crier.publish(db.sql, 'nfy.single', { secret, i });
      }),
      [],
      'the parked workers were woken already: later publishes skip the NOTIFY until they park again',
    );
    await parkA();
    assert.deepEqual(
      await notificationsOf(async () => {
        for (let i = 0; i < 3; i++) await crier.publish(db.sql, 'nfy.single', { secret, i });
      }),
      ['nfy-a'],
      'parked again: the first of three single publishes notifies, the others do not',
    );
    await parkA();
    assert.deepEqual(
      await notificationsOf(() => batch('nfy.b.x', 5)),
      ['nfy-a'],
      'nfy-b receives too, but has no parked worker, so it is not named',
    );
    await parkA();
    await db.sql`SELECT crier.park('w-b', '{nfy-b}')`;
    const both = await notificationsOf(() => batch('nfy.b.x', 5));
    assert.equal(both.length, 1);
    assert.deepEqual(both[0]!.split(' ').sort(), ['nfy-a', 'nfy-b']);
    await parkA();
    assert.deepEqual(await notificationsOf(() => batch('nobody.subscribes', 100)), [], 'an unrouted topic: no NOTIFY');
    assert.deepEqual(
      await notificationsOf(() => db.sql`SELECT crier.publish('nfy.sql', '{"secret": "x"}')`),
      ['nfy-a'],
      'SQL publish notifies the same way',
    );
    await parkA();
    await db.sql`SELECT crier.unpark('w-a1', '{nfy-a}'), crier.unpark('w-a2', '{nfy-a}'), crier.unpark('w-b', '{nfy-b}')`;
    assert.deepEqual(await notificationsOf(() => batch('nfy.b.x', 5)), [], 'after unpark: silent again');
  });

  test('a publisher whose transaction has not committed the mark yet does not stop others notifying', async () => {
    await db.sql`SELECT crier.park('w-c', '{nfy-a}')`;
    const other = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      // An open transaction marks the row (and holds it) but has not committed: a second publisher
      // must still notify, and must not wait for the first.
      const notes = await notificationsOf(async () => {
        await other.begin(async (tx) => {
          await crier.publish(tx, 'nfy.open', { n: 1 });
          await crier.publish(db.sql, 'nfy.second', { n: 2 });
        });
      });
      assert.deepEqual(notes, ['nfy-a', 'nfy-a'], 'both publishers notified');
    } finally {
      await other.end({ timeout: 1 });
      await db.sql`SELECT crier.unpark('w-c', '{nfy-a}')`;
    }
  });

  test("the payload is '*' when the names would be long, never the event", async () => {
    const names = Array.from({ length: 60 }, (_, i) => `many-subscriptions-${String(i).padStart(3, '0')}`);
    for (const name of names) await subscribe(name, ['many.x']);
    await db.sql`SELECT crier.park('w-many', ${names}::text[])`;
    const notes = await notificationsOf(() => batch('many.x', 3, { big: 'y'.repeat(5000) }));
    assert.deepEqual(notes, ['*']);
    await db.sql`SELECT crier.unpark('w-many', ${names}::text[])`;
  });
});

// Publishers never wait on each other's transactions for the route cache: the first publisher of
// a topic (ever, or after a subscription change) caches its route under a try-lock and others
// resolve it themselves meanwhile. Before, they waited on its row lock and could deadlock (40P01).
describe('concurrent publishers', () => {
  let a: postgres.Sql;
  let b: postgres.Sql;
  before(async () => {
    a = postgres(db.url, { max: 1, onnotice: () => {} });
    b = postgres(db.url, { max: 1, onnotice: () => {} });
  });
  after(async () => {
    await a.end({ timeout: 1 });
    await b.end({ timeout: 1 });
  });

  const signal = () => {
    let fire!: () => void;
    const fired = new Promise<void>((resolve) => (fire = resolve));
    return { fire, fired };
  };

  test('a publisher does not wait for another open transaction that published the same new topic', async () => {
    await subscribe('cc-wait', ['ccwait.#']);
    const published = signal();
    const finish = signal();
    const first = a.begin(async (tx) => {
      await crier.publish(tx, 'ccwait.created', { n: 1 });
      published.fire();
      await finish.fired; // a long business transaction
    });
    await published.fired;
    try {
      // lock_timeout only turns a hang into a failure; no timing is measured.
      await b.begin(async (tx) => {
        await tx`SET LOCAL lock_timeout = '3s'`;
        await crier.publish(tx, 'ccwait.created', { n: 2 });
      });
    } finally {
      finish.fire();
      await first;
    }
    assert.equal((await countTopic('ccwait.')).events, 2);
    assert.equal(await deliveriesFor('cc-wait'), 2);
  });

  test('two transactions publishing two new topics in opposite orders both commit (no deadlock)', async () => {
    await subscribe('cc-deadlock', ['ccdl.#']);
    const aFirst = signal();
    const bFirst = signal();
    // Whatever fails, both signals fire, so that a failure can never leave the other side waiting.
    const results = await Promise.allSettled([
      a
        .begin(async (tx) => {
          await tx`SET LOCAL lock_timeout = '3s'`;
          await crier.publish(tx, 'ccdl.one', {});
          aFirst.fire();
          await bFirst.fired;
          await crier.publish(tx, 'ccdl.two', {});
        })
        .finally(aFirst.fire),
      b
        .begin(async (tx) => {
          await tx`SET LOCAL lock_timeout = '3s'`;
          await aFirst.fired;
          await crier.publish(tx, 'ccdl.two', {});
          bFirst.fire();
          await crier.publish(tx, 'ccdl.one', {});
        })
        .finally(bFirst.fire),
    ]);
    assert.deepEqual(
      results.map((r) => (r.status === 'fulfilled' ? 'committed' : String((r.reason as Error).message))),
      ['committed', 'committed'],
    );
    assert.equal((await countTopic('ccdl.')).events, 4);
    assert.equal(await deliveriesFor('cc-deadlock'), 4);
  });
});
