// crier through a real PgBouncer in transaction pool mode (started by this file): publishing with a
// `prepare: false` client works, in and out of transactions and from SQL; a worker whose LISTEN goes
// through the pooler notices that no notification comes back, says so once and keeps working by
// polling; given a direct `listenConnection`, it wakes by NOTIFY again.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import postgres from 'postgres';
import { type Logger } from '../src/index.ts';
import { createCrier } from './support/history.ts';
import { createTestDatabase, deliveryOutcomes, deliveryStates, eventually, type TestDatabase } from './support/database.ts';
import { pgbouncerSkip as skip, startPgBouncer, type PgBouncer } from './support/pgbouncer.ts';

const crier = createCrier();
let db: TestDatabase;
let bouncer: PgBouncer;
let pooled: postgres.Sql;

before(async () => {
  if (skip) return;
  db = await createTestDatabase('pgbouncer');
  bouncer = await startPgBouncer();
  // What PgBouncer's transaction mode needs from postgres.js: no named prepared statements.
  pooled = postgres(bouncer.url(db.name), { prepare: false, max: 6, onnotice: () => {} });
  await db.sql`INSERT INTO crier.subscriptions (name, topics) VALUES ('billing', '{shop.#}'), ('mailer', '{shop.order.*}')`;
});
after(async () => {
  await pooled?.end({ timeout: 1 });
  await bouncer?.stop();
  await db?.drop();
});

function recordingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, info() {}, warn: (m) => void warnings.push(m), error: (m) => void warnings.push(`error: ${m}`) };
}

const deafWarning = /LISTEN does not work on this connection/;

describe('publishing through PgBouncer (transaction mode)', () => {
  test('a prepare:false client publishes inside transactions that commit or roll back, and events fan out', { skip }, async () => {
    await pooled`CREATE TABLE orders (id int PRIMARY KEY)`;
    // Concurrent transactions spread over several server connections: a named prepared statement
    // would be missing on most of them.
    const committed = await Promise.all(
      Array.from({ length: 24 }, (_, n) =>
        pooled.begin(async (tx) => {
          await tx`INSERT INTO orders (id) VALUES (${n})`;
          return crier.publish(tx, 'shop.order.created', { order: n }, { key: String(n) });
        }),
      ),
    );
    const rolledBack = await Promise.allSettled(
      Array.from({ length: 6 }, (_, n) =>
        pooled.begin(async (tx) => {
          await tx`INSERT INTO orders (id) VALUES (${100 + n})`;
          await crier.publishMany(tx, [{ topic: 'shop.order.cancelled', payload: { order: 100 + n } }]);
          throw new Error('the business transaction fails');
        }),
      ),
    );
    assert.ok(rolledBack.every((r) => r.status === 'rejected' && /business transaction fails/.test(String(r.reason))));
    // Outside a transaction too: each publish is its own transaction on whichever server is free.
    await Promise.all(Array.from({ length: 10 }, (_, n) => crier.publish(pooled, 'shop.invoice.sent', { invoice: n })));

    const [counts] = await db.sql`
      SELECT (SELECT count(*)::int FROM orders) AS orders,
             (SELECT count(*)::int FROM crier.events WHERE topic = 'shop.order.created') AS created,
             (SELECT count(*)::int FROM crier.events WHERE topic = 'shop.order.cancelled') AS cancelled,
             (SELECT count(*)::int FROM crier.events WHERE topic = 'shop.invoice.sent') AS invoices`;
    assert.deepEqual({ ...counts }, { orders: 24, created: 24, cancelled: 0, invoices: 10 });
    const fannedOut = await db.sql<{ id: string; subs: string[] }[]>`
      SELECT e.id::text, array_agg(d.subscription ORDER BY d.subscription) AS subs
      FROM crier.events e JOIN crier.deliveries d ON d.event_id = e.id
      WHERE e.id = ANY(${committed.map((e) => e.id)}::bigint[]) GROUP BY e.id`;
    assert.equal(fannedOut.length, 24);
    for (const row of fannedOut) assert.deepEqual(row.subs, ['billing', 'mailer']);
    assert.deepEqual(await deliveryStates(db.sql, 'billing'), { pending: 34 });
  });

  test('SQL crier.publish works through the pooler', { skip }, async () => {
    const [row] = await pooled`SELECT crier.publish('shop.refund.issued', ${pooled.json({ refund: 7 })}, 'r-7') AS id`;
    const [event] = await db.sql`SELECT topic, key, payload FROM crier.events WHERE id = ${row!.id}`;
    assert.deepEqual({ ...event }, { topic: 'shop.refund.issued', key: 'r-7', payload: { refund: 7 } });
    const [delivery] = await db.sql`SELECT subscription FROM crier.deliveries WHERE event_id = ${row!.id}`;
    assert.equal(delivery!.subscription, 'billing');
  });
});

describe('workers behind PgBouncer (transaction mode)', () => {
  test('LISTEN through the pooler: the worker warns once that it only polls, and still handles everything', { skip }, async () => {
    const logger = recordingLogger();
    const handled = new Map<string, number>();
    const count = (id: string) => handled.set(id, (handled.get(id) ?? 0) + 1);
    const worker = crier.worker({
      // `?prepare=false` is read by postgres.js from the URL.
      connection: `${bouncer.url(db.name)}?prepare=false`,
      pollInterval: 250,
      handleSignals: false,
      logger,
      subscriptions: [
        { name: 'polled', topics: ['polled.#'], handler: (event) => void count(event.id) },
        // Handler transactions (sql.begin) go through the pooler too.
        {
          name: 'polled-tx',
          topics: ['polled.#'],
          transactional: true,
          concurrency: 2,
          handler: async (event, ctx) => {
            await ctx.tx`SELECT 1`;
            count(event.id);
          },
        },
      ],
    });
    await worker.start();
    try {
      await eventually(() => logger.warnings.some((w) => deafWarning.test(w)), 15_000, 'the deaf-LISTEN warning');
      const published = await pooled.begin((tx) =>
        crier.publishMany(tx, Array.from({ length: 15 }, (_, n) => ({ topic: 'polled.job', payload: { n } }))),
      );
      await eventually(async () => (await deliveryOutcomes(db.sql, 'polled', 15)).succeeded === 15 && (await deliveryOutcomes(db.sql, 'polled-tx', 15)).succeeded === 15, 20_000, 'all deliveries done by polling');
      for (const event of published) assert.equal(handled.get(event.id), 2, `event ${event.id} handled once per subscription`);
      const warning = logger.warnings.filter((w) => deafWarning.test(w));
      assert.equal(warning.length, 1, `warned once: ${logger.warnings.join('\n')}`);
      assert.match(warning[0]!, /transaction-mode pooler/);
      assert.match(warning[0]!, /polling every 250ms/);
      assert.match(warning[0]!, /listenConnection/);
      assert.deepEqual(logger.warnings.filter((w) => !deafWarning.test(w)), [], 'no other warnings');
    } finally {
      await worker.stop();
    }
  });

  test('with a direct listenConnection, a worker on the pooler wakes by NOTIFY and does not warn', { skip }, async () => {
    const logger = recordingLogger();
    const handled: string[] = [];
    const worker = crier.worker({
      connection: pooled, // the caller's prepare:false client on PgBouncer
      listenConnection: db.url, // LISTEN needs a session: direct to Postgres
      // Far longer than this test waits: only a NOTIFY can get the event handled in time.
      pollInterval: 120_000,
      handleSignals: false,
      logger,
      subscriptions: [{ name: 'woken', topics: ['woken.#'], handler: (event) => void handled.push(event.id) }],
    });
    await worker.start();
    try {
      // Parked: the loop has found nothing and sleeps on NOTIFY (or the 2-minute poll).
      await eventually(async () => (await db.sql`SELECT 1 FROM crier.parked_workers WHERE subscription = 'woken'`).length === 1, 10_000, 'worker parked');
      await new Promise((resolve) => setTimeout(resolve, 200));
      const event = await crier.publish(pooled, 'woken.up', { n: 1 });
      await eventually(() => handled.includes(event.id), 15_000, 'handled after a NOTIFY wake-up');
      // Let the LISTEN probe's deadline (3s after its NOTIFY) pass: a working LISTEN never warns.
      await new Promise((resolve) => setTimeout(resolve, 3500));
      assert.deepEqual(logger.warnings, []);
    } finally {
      await worker.stop();
    }
  });
});
