// Transactional handlers: the handler's writes, the events it publishes and the ack commit in one
// transaction. A throw, a lost lease or a killed process leaves none of them; the retry policy
// brings the delivery back, and in the end every event has exactly one effect.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { drizzle } from 'drizzle-orm/postgres-js';
import { integer, pgTable, text } from 'drizzle-orm/pg-core';
import postgres from 'postgres';
import { CrierError, type SubscriptionDefinition } from '../src/index.ts';
import { createCrier } from './support/history.ts';
import { drizzleTransaction } from '../src/integrations/drizzle.ts';
import { createTestDatabase, deliveryOutcomes, deliveryStates, eventually, type TestDatabase } from './support/database.ts';
import { spawnTs, type Child } from './support/processes.ts';

const crier = createCrier();
let db: TestDatabase;
const children: Child[] = [];
const effects = pgTable('effects', { eventId: text('event_id').notNull(), worker: text('worker'), attempt: integer('attempt') });

before(async () => {
  db = await createTestDatabase('transactional');
  await db.sql`CREATE TABLE effects (event_id bigint NOT NULL, worker text, attempt int)`;
});
after(async () => {
  for (const child of children) child.process.kill('SIGKILL');
  await db.drop();
});

const effectRows = async (eventId: string) =>
  (await db.sql`SELECT attempt FROM effects WHERE event_id = ${eventId} ORDER BY attempt`).map((r) => r.attempt as number);

function startWorker(subscription: SubscriptionDefinition) {
  return crier.worker({ connection: db.url, handleSignals: false, logger: false, pollInterval: '100ms', subscriptions: [subscription] }).start();
}

describe('transactional handlers', () => {
  test('a handler that writes a row and then throws leaves no row (nor its published event) and is retried', async () => {
    const seenBeforeRetry: number[][] = [];
    const worker = await startWorker({
      name: 'tx-throws',
      topics: ['txt.order'],
      transactional: true,
      backoff: { base: 10, max: 10 },
      handler: async (event, ctx) => {
        if (ctx.attempt === 2) seenBeforeRetry.push(await effectRows(event.id));
        await ctx.tx`INSERT INTO effects (event_id, attempt) VALUES (${event.id}, ${ctx.attempt})`;
        await ctx.publish('txt.followup', { attempt: ctx.attempt });
        if (ctx.attempt === 1) throw new Error('failed after writing');
      },
    });
    try {
      const event = await crier.publish(db.sql, 'txt.order', { n: 1 });
      await eventually(async () => (await deliveryStates(db.sql, 'tx-throws')).done === 1, 10_000, 'order done');
      assert.deepEqual(seenBeforeRetry, [[]], 'the first attempt left no row behind');
      assert.deepEqual(await effectRows(event.id), [2]);
      const [row] = await db.sql`SELECT attempts, errors->0->>'error' AS error FROM crier.deliveries WHERE event_id = ${event.id}`;
      assert.deepEqual({ ...row }, { attempts: 2, error: 'failed after writing' });
      const followups = await db.sql`SELECT payload FROM crier.events WHERE topic = 'txt.followup'`;
      assert.deepEqual(followups.map((f) => f.payload), [{ attempt: 2 }], 'only the committed attempt published');
    } finally {
      await worker.stop();
    }
  });

  test('Drizzle over ctx.tx (drizzleTransaction) commits with the ack', async () => {
    const client = postgres(db.url, { max: 8, onnotice: () => {} });
    const orm = drizzle(client);
    const worker = await crier.worker({
      connection: client,
      handleSignals: false,
      logger: false,
      subscriptions: [{
        name: 'tx-drizzle',
        topics: ['txd.#'],
        transactional: true,
        concurrency: 2,
        handler: async (event, ctx) => {
          await drizzleTransaction(orm, ctx.tx).insert(effects).values({ eventId: event.id, worker: 'drizzle', attempt: ctx.attempt });
        },
      }],
    }).start();
    try {
      const event = await crier.publish(db.sql, 'txd.order', {});
      await eventually(async () => (await deliveryOutcomes(db.sql, 'tx-drizzle', 1)).succeeded === 1, 10_000, 'done');
      assert.deepEqual(await effectRows(event.id), [1]);
    } finally {
      await worker.stop();
      await client.end();
    }
  });

  for (const history of ['full', 'failures'] as const) {
    test(`if the lease was lost meanwhile, the ack is refused and the handler’s writes roll back (history ${history})`, async () => {
      let release: () => void = () => {};
      const gate = new Promise<void>((resolve) => (release = resolve));
      let wrote = false;
      const worker = await startWorker({
        name: `tx-lease-${history}`,
        topics: [`txl-${history}.#`],
        transactional: true,
        history,
        lease: '10s',
        handler: async (event, ctx) => {
          await ctx.tx`INSERT INTO effects (event_id, attempt) VALUES (${event.id}, ${ctx.attempt})`;
          wrote = true;
          await gate;
        },
      });
      try {
        const event = await crier.publish(db.sql, `txl-${history}.order`, {});
        await eventually(() => wrote, 10_000, 'handler wrote its row');
        // Another attempt takes the delivery over (as after an expired lease and a rescue).
        await db.sql`UPDATE crier.deliveries SET worker = 'thief', attempts = attempts + 1 WHERE event_id = ${event.id}`;
        release();
        await eventually(async () => worker['loops'][0]!.runner.held === 0, 10_000, 'handler settled');
        assert.deepEqual(await effectRows(event.id), [], 'no effect committed without the lease');
        const [row] = await db.sql`SELECT state, worker FROM crier.deliveries WHERE event_id = ${event.id}`;
        assert.deepEqual({ ...row }, { state: 'running', worker: 'thief' }, 'the other attempt still owns it');
      } finally {
        await worker.stop();
      }
    });
  }

  test('a handler that outlives its transaction (timed out) cannot write through ctx.tx any more', async () => {
    // postgres.js would run such a late query outside any transaction: a write that must have
    // rolled back would commit (the fault suite saw it as a transactional duplicate).
    const late: string[] = [];
    const worker = await startWorker({
      name: 'tx-late',
      topics: ['txlate.#'],
      transactional: true,
      timeout: '200ms',
      backoff: { base: 10, max: 10 },
      handler: async (event, ctx) => {
        if (ctx.attempt === 1) {
          await new Promise((resolve) => setTimeout(resolve, 600));
          late.push(await ctx.tx`INSERT INTO effects (event_id, attempt) VALUES (${event.id}, 1)`.then(() => 'ran', (e: Error) => e.message));
          return;
        }
        await ctx.tx`INSERT INTO effects (event_id, attempt) VALUES (${event.id}, ${ctx.attempt})`;
      },
    });
    try {
      const event = await crier.publish(db.sql, 'txlate.order', {});
      await eventually(() => late.length === 1, 10_000, 'the timed-out attempt tried its late write');
      await eventually(async () => (await deliveryStates(db.sql, 'tx-late')).done === 1, 10_000, 'done');
      assert.match(late[0]!, /ctx\.tx used after its transaction ended/);
      assert.deepEqual(await effectRows(event.id), [2], 'only the committed attempt wrote');
    } finally {
      await worker.stop();
    }
  });

  test('ctx.tx outside a transactional subscription, and bad ordering options, are clear errors', async () => {
    const worker = await startWorker({
      name: 'not-tx',
      topics: ['ntx.#'],
      maxAttempts: 1,
      handler: async (_event, ctx) => void (await ctx.tx`SELECT 1`),
    });
    try {
      const event = await crier.publish(db.sql, 'ntx.order', {});
      await eventually(async () => (await deliveryStates(db.sql, 'not-tx')).dead === 1, 10_000, 'dead');
      const [row] = await db.sql`SELECT last_error FROM crier.deliveries WHERE event_id = ${event.id}`;
      assert.match(row!.last_error, /^CRIER_INVALID_OPTION: ctx\.tx is only given to handlers of transactional subscriptions; declare subscription "not-tx" with transactional: true/);
    } finally {
      await worker.stop();
    }
    assert.throws(
      () => crier.worker({ connection: db.url, subscriptions: [{ name: 'x', topics: ['x'], ordered: { onDead: 'drop' as never }, handler: () => {} }] }),
      (e: unknown) => e instanceof CrierError && e.code === 'CRIER_INVALID_OPTION' && /ordered must be/.test(e.message),
    );
  });

  test('SIGKILL after the handler wrote, before commit: no row, redelivered, one row per event in the end', async () => {
    await db.sql`TRUNCATE effects`;
    const n = 5;
    const doomed = spawnTs('fixtures/transactional-worker.ts', { DATABASE_URL: db.url, WORKER_ID: 'doomed', HANG_AFTER_WRITE: '1' });
    children.push(doomed);
    await doomed.waitFor(/ready/);
    const published = await db.sql.begin((tx) => crier.publishMany(tx, Array.from({ length: n }, (_, i) => ({ topic: 'effect.made', payload: { i } }))));
    await doomed.waitFor(new RegExp(`(wrote \\d+[\\s\\S]*){${n}}`));
    doomed.process.kill('SIGKILL');
    await doomed.exited;
    const [{ count }] = (await db.sql`SELECT count(*)::int AS count FROM effects`) as unknown as [{ count: number }];
    assert.equal(count, 0, 'the killed transactions left no rows');
    assert.deepEqual(await deliveryStates(db.sql, 'effects'), { running: n });

    const rescuer = spawnTs('fixtures/transactional-worker.ts', { DATABASE_URL: db.url, WORKER_ID: 'rescuer' });
    children.push(rescuer);
    await eventually(async () => (await deliveryStates(db.sql, 'effects')).done === n, 20_000, 'all redelivered and done');
    const rows = await db.sql`SELECT event_id::text AS id, worker, attempt FROM effects ORDER BY event_id`;
    assert.equal(rows.length, n, 'final count of rows equals the number of events');
    assert.deepEqual(rows.map((r) => r.id), published.map((e) => e.id));
    assert.ok(rows.every((r) => r.worker === 'rescuer' && r.attempt === 2), 'each by the second attempt');
    rescuer.process.kill('SIGTERM');
    await rescuer.exited;
  });

  test('postgres.js 3.x: a handler that returns after its connection was cut does not end the worker process', async () => {
    // The whole child on postgres.js 3.4.x (the postgres-3 devDependency), as the fault suite's
    // --driver 3 does it. Its begin() rejects when the connection closes, but the handler runs on;
    // an ack sent through the dead transaction then threw from a timer and killed the process.
    await db.sql`TRUNCATE effects`;
    const driver = new URL('../faults/driver.mjs', import.meta.url).href;
    const worker = spawnTs('fixtures/transactional-worker.ts', {
      DATABASE_URL: db.url,
      WORKER_ID: 'cut',
      PAUSE_AFTER_WRITE_MS: '1000',
      LEASE: '5s',
      CRIER_TEST_DRIVER: '3',
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${driver}`.trim(),
    });
    children.push(worker);
    await worker.waitFor(/ready/);
    assert.match(worker.output(), /postgres\.js 3\./);
    const event = await crier.publish(db.sql, 'effect.cut', {});
    await worker.waitFor(/wrote/);
    // The handler's transaction, idle while the handler waits: its connection goes.
    const cut = await db.sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                             WHERE datname = current_database() AND state = 'idle in transaction'`;
    assert.equal(cut.length, 1);
    const state = async () => (await db.sql`SELECT state FROM crier.deliveries WHERE event_id = ${event.id}`)[0]?.state;
    await eventually(async () => (await state()) === 'done', 20_000, 'redelivered and done');
    // The first attempt's handler returns after its pause; the ack that followed threw a tick later.
    await worker.waitFor(/returned/);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(worker.process.exitCode, null, `the worker is still running:\n${worker.output()}`);
    assert.deepEqual((await db.sql`SELECT attempt FROM effects WHERE event_id = ${event.id}`).map((r) => r.attempt), [2]);
    worker.process.kill('SIGTERM');
    await worker.exited;
  });
});
