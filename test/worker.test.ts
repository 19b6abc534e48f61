import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import postgres from 'postgres';
import { UnrecoverableError, type CrierEvent } from '../src/index.ts';
import { createCrier } from './support/history.ts';
import { Protocol } from '../src/worker/protocol.ts';
import { createTestDatabase, deliveryOutcomes, deliveryStates, eventually, type TestDatabase } from './support/database.ts';

const crier = createCrier();
let db: TestDatabase;
before(async () => {
  db = await createTestDatabase('worker');
});
after(async () => {
  await db.drop();
});

describe('worker', () => {
  test('handles every delivery once, retries then succeeds, and dead-letters after max attempts', async () => {
    const seen = new Map<string, number>();
    const worker = crier.worker({
      connection: db.url,
      handleSignals: false,
      subscriptions: [
        {
          name: 'basic',
          topics: ['basic.#'],
          maxAttempts: 3,
          backoff: { base: 10, max: 20 },
          handler: async (event: CrierEvent<{ n: number; mode: string }>, ctx) => {
            seen.set(event.id, (seen.get(event.id) ?? 0) + 1);
            if (event.payload.mode === 'flaky' && ctx.attempt < 2) throw new Error('flaky: not yet');
            if (event.payload.mode === 'broken') throw new Error(`broken order ${event.payload.n}`);
            if (event.payload.mode === 'hopeless') throw new UnrecoverableError('cannot ever work');
          },
        },
      ],
    });
    await worker.start();
    try {
      const published = await db.sql.begin((tx) =>
        crier.publishMany(tx, [
          ...Array.from({ length: 20 }, (_, n) => ({ topic: 'basic.ok', payload: { n, mode: 'ok' } })),
          { topic: 'basic.flaky', payload: { n: 100, mode: 'flaky' } },
          { topic: 'basic.broken', payload: { n: 101, mode: 'broken' } },
          { topic: 'basic.hopeless', payload: { n: 102, mode: 'hopeless' } },
        ]),
      );
      assert.equal(published.length, 23);
      await eventually(async () => {
        const s = await deliveryOutcomes(db.sql, 'basic', 23);
        return s.succeeded === 21 && s.dead === 2 && seen.size === 23;
      }, 15_000, 'all deliveries finished');
      const [flaky] = await db.sql`SELECT attempts, state FROM crier.deliveries d JOIN crier.events e ON e.id = d.event_id WHERE e.topic = 'basic.flaky'`;
      assert.deepEqual({ ...flaky }, { attempts: 2, state: 'done' });
      const [broken] = await db.sql`SELECT attempts, last_error, last_error_stack, jsonb_array_length(errors) AS errors FROM crier.deliveries d JOIN crier.events e ON e.id = d.event_id WHERE e.topic = 'basic.broken'`;
      assert.equal(broken!.attempts, 3);
      assert.equal(broken!.last_error, 'broken order 101');
      assert.match(broken!.last_error_stack, /worker\.test\.ts/);
      assert.equal(broken!.errors, 3);
      const [hopeless] = await db.sql`SELECT attempts, state, last_error FROM crier.deliveries d JOIN crier.events e ON e.id = d.event_id WHERE e.topic = 'basic.hopeless'`;
      assert.deepEqual({ ...hopeless }, { attempts: 1, state: 'dead', last_error: 'UnrecoverableError: cannot ever work' });
      for (const event of published.filter((e) => e.topic === 'basic.ok')) assert.equal(seen.get(event.id), 1);
    } finally {
      await worker.stop();
    }
  });

  test('batchSize claims ahead: big claims, handlers still limited to concurrency, queued work handed back on stop', async () => {
    let running = 0;
    let maxRunning = 0;
    const handled = new Map<string, number>();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const worker = crier.worker({
      connection: db.url,
      handleSignals: false,
      logger: false,
      subscriptions: [
        {
          name: 'batched',
          topics: ['batched.#'],
          concurrency: 2,
          batchSize: 40,
          handler: async (event: CrierEvent<{ n: number; slow?: boolean }>) => {
            running++;
            maxRunning = Math.max(maxRunning, running);
            handled.set(event.id, (handled.get(event.id) ?? 0) + 1);
            if (event.payload.slow) await gate;
            else await new Promise((resolve) => setTimeout(resolve, 2));
            running--;
          },
        },
      ],
    });
    await worker.start();
    try {
      await db.sql.begin((tx) => crier.publishMany(tx, Array.from({ length: 100 }, (_, n) => ({ topic: 'batched.x', payload: { n } }))));
      let maxHeld = 0;
      await eventually(async () => {
        const s = await deliveryOutcomes(db.sql, 'batched', 100);
        maxHeld = Math.max(maxHeld, s.running ?? 0);
        return s.succeeded === 100 && handled.size === 100;
      }, 15_000, '100 done');
      assert.equal(maxRunning, 2, 'never more handlers than concurrency');
      assert.ok(maxHeld > 2, `deliveries were claimed ahead (up to ${maxHeld} held at once)`);
      assert.deepEqual([...new Set(handled.values())], [1], 'each handled once');

      // Two slow handlers occupy both slots; the rest wait in the local queue when we stop.
      await db.sql.begin((tx) => crier.publishMany(tx, Array.from({ length: 30 }, (_, n) => ({ topic: 'batched.slow', payload: { n, slow: true } }))));
      await eventually(async () => ((await deliveryStates(db.sql, 'batched')).running ?? 0) === 30, 10_000, 'all 30 claimed ahead');
    } finally {
      const stopped = worker.stop();
      release();
      await stopped;
    }
    const states = await db.sql`
      SELECT d.state, d.attempts, count(*)::int AS n FROM crier.deliveries d JOIN crier.events e ON e.id = d.event_id
      WHERE e.topic = 'batched.slow' GROUP BY 1, 2 ORDER BY 1, 2`;
    const pending = states.find((r) => r.state === 'pending');
    assert.ok(pending && pending.attempts === 0 && pending.n >= 26, `never-started deliveries handed back without burning an attempt: ${JSON.stringify(states)}`);
  });

  test('with a backlog, the next claim goes out while the previous one is on its way; never more than batchSize held', async () => {
    // Counts the claims on their way and the deliveries held (claimed, not yet settled) at each claim.
    let onTheirWay = 0;
    let mostOnTheirWay = 0;
    let mostHeld = 0;
    let held = 0;
    async function counted<T>(limit: number, send: () => Promise<T>, count: (result: T) => number): Promise<T> {
      onTheirWay++;
      mostOnTheirWay = Math.max(mostOnTheirWay, onTheirWay);
      mostHeld = Math.max(mostHeld, held + limit);
      held += limit;
      try {
        const result = await send();
        held -= limit - count(result);
        return result;
      } catch (error) {
        held -= limit;
        throw error;
      } finally {
        onTheirWay--;
      }
    }
    const { claim, claimOrIdle } = Protocol.prototype;
    Protocol.prototype.claim = function (this: Protocol, subscription, limit, done) {
      return counted(limit, () => claim.call(this, subscription, limit, done), (claimed) => claimed.length);
    };
    Protocol.prototype.claimOrIdle = function (this: Protocol, subscription, limit, done, park) {
      return counted(limit, () => claimOrIdle.call(this, subscription, limit, done, park), (claimed) => claimed.deliveries.length);
    };
    const handled = new Map<string, number>();
    const worker = crier.worker({
      connection: db.url,
      handleSignals: false,
      logger: false,
      subscriptions: [
        {
          name: 'backlog',
          topics: ['backlog.#'],
          concurrency: 4,
          batchSize: 60,
          handler: (event) => {
            held--;
            handled.set(event.id, (handled.get(event.id) ?? 0) + 1);
          },
        },
      ],
    });
    try {
      await worker.start(); // declares the subscription; the 3000 events then arrive in one commit
      await db.sql.begin((tx) => crier.publishMany(tx, Array.from({ length: 3000 }, (_, n) => ({ topic: 'backlog.x', payload: { n } }))));
      await eventually(async () => (await deliveryOutcomes(db.sql, 'backlog', 3000)).succeeded === 3000, 30_000, '3000 done');
    } finally {
      Object.assign(Protocol.prototype, { claim, claimOrIdle });
      await worker.stop();
    }
    assert.equal(handled.size, 3000);
    assert.deepEqual([...new Set(handled.values())], [1], 'each handled once');
    assert.equal(mostOnTheirWay, 2, 'two claims overlapped while there was a backlog, never more');
    assert.ok(mostHeld <= 60, `claimed ahead within batchSize (at most ${mostHeld} held or asked for)`);
  });

  test('an idle worker handles an event and is asleep again after three round trips', async () => {
    // The loop's calls to Postgres (the timers' heartbeats and polls aside) from one event's
    // wake-up to sleeping again: the claim that gets it, the claim that carries its ack, comes back
    // empty and parks, and the re-check claim that also says when the next delivery is due.
    // Re-checks waiting for running transactions are not counted: they happen only while other transactions (other
    // test files' too) that were running when the worker parked have not ended.
    const calls: string[] = [];
    const timers = new Set(['extendLeases', 'poll']);
    const run = (Protocol.prototype as any).run; // every statement the protocol sends, by name
    (Protocol.prototype as any).run = function (this: Protocol, name: string, params: unknown[], ...rest: unknown[]) {
      if (!timers.has(name) && !(name === 'claimOrIdle' && params[6] !== null)) calls.push(name);
      return run.call(this, name, params, ...rest);
    };
    let handled = 0;
    const worker = crier.worker({
      connection: db.url,
      handleSignals: false,
      logger: false,
      pollInterval: '30s',
      subscriptions: [{ name: 'idle-cycle', topics: ['idle.#'], handler: () => void handled++ }],
    });
    const parked = async () =>
      (await db.sql`SELECT 1 FROM crier.parked_workers WHERE subscription = 'idle-cycle'`).length === 1;
    try {
      await worker.start();
      await eventually(parked, 10_000, 'worker parked');
      await new Promise((resolve) => setTimeout(resolve, 300)); // the re-check after parking
      calls.length = 0;
      await crier.publish(db.sql, 'idle.x', {});
      await eventually(async () => handled === 1 && (await deliveryOutcomes(db.sql, 'idle-cycle', 1)).succeeded === 1 && (await parked()), 10_000, 'handled, acked, parked again');
      await new Promise((resolve) => setTimeout(resolve, 300)); // whatever follows the park
      assert.ok(calls.length <= 3, `at most 3 round trips from the wake-up to sleeping (${calls.join(', ')})`);
    } finally {
      (Protocol.prototype as any).run = run;
      await worker.stop();
    }
  });

  test('an event whose producer was still committing when the worker parked is handled without waiting for the poll', async () => {
    // The producer inserts its event before the worker parks (so it sees no parked worker and sends
    // no NOTIFY) and commits after the worker's re-check: the worker re-checks until that
    // transaction has ended, instead of sleeping for its poll interval (60 s here).
    const handled: string[] = [];
    const subscription = { name: 'late-commit', topics: ['late.#'], handler: (event: CrierEvent) => void handled.push(event.id) };
    const declaring = crier.worker({ connection: db.url, handleSignals: false, logger: false, subscriptions: [subscription] });
    await declaring.start();
    await declaring.stop();
    const producer = postgres(db.url, { max: 1, onnotice: () => {} });
    const worker = crier.worker({ connection: db.url, handleSignals: false, logger: false, pollInterval: '60s', subscriptions: [subscription] });
    let commit: (() => void) | undefined;
    try {
      const committed = producer.begin(async (tx) => {
        await crier.publish(tx, 'late.x', {});
        await new Promise<void>((resolve) => (commit = resolve));
      });
      await eventually(() => commit !== undefined, 10_000, 'published, not committed');
      await worker.start();
      await eventually(async () => (await db.sql`SELECT 1 FROM crier.parked_workers WHERE subscription = 'late-commit'`).length === 1, 10_000, 'worker parked');
      await new Promise((resolve) => setTimeout(resolve, 300)); // its re-check found nothing to claim
      assert.equal(handled.length, 0, 'not committed yet');
      commit!();
      await committed;
      await eventually(() => handled.length === 1, 10_000, 'handled long before the poll interval');
    } finally {
      commit?.();
      await worker.stop();
      await producer.end({ timeout: 1 });
    }
  });

  test('a paused subscription with deliveries due sleeps until resumed, instead of claiming nothing over and over', async () => {
    let claims = 0;
    const run = (Protocol.prototype as any).run;
    (Protocol.prototype as any).run = function (this: Protocol, name: string, ...rest: unknown[]) {
      if (name.startsWith('claim')) claims++;
      return run.call(this, name, ...rest);
    };
    let handled = 0;
    const worker = crier.worker({
      connection: db.url,
      handleSignals: false,
      logger: false,
      subscriptions: [{ name: 'paused-idle', topics: ['paused-idle.#'], handler: () => void handled++ }],
    });
    try {
      await worker.start();
      await db.sql`SELECT crier.pause_subscription('paused-idle')`;
      await crier.publish(db.sql, 'paused-idle.x', {});
      await new Promise((resolve) => setTimeout(resolve, 500)); // the NOTIFY's claim, the park, the re-check
      const before = claims;
      await new Promise((resolve) => setTimeout(resolve, 2000));
      // Before, each claim reported the delivery due now and the loop claimed again: 10-27 a second.
      assert.ok(claims - before <= 3, `${claims - before} claims in 2 s while paused`);
      assert.equal(handled, 0);
      await db.sql`SELECT crier.resume_subscription('paused-idle')`;
      await eventually(() => handled === 1, 10_000, 'handled once resumed');
    } finally {
      (Protocol.prototype as any).run = run;
      await worker.stop();
    }
  });

  test('a handler that throws synchronously fails its attempt like one that rejects', async () => {
    const worker = crier.worker({
      connection: db.url,
      handleSignals: false,
      logger: false,
      subscriptions: [
        {
          name: 'sync-throw',
          topics: ['sync.#'],
          concurrency: 2,
          batchSize: 20,
          handler: (event: CrierEvent<{ n: number }>) => {
            if (event.payload.n % 2 === 0) throw new UnrecoverableError(`even ${event.payload.n}`);
          },
        },
      ],
    });
    await worker.start();
    try {
      await db.sql.begin((tx) => crier.publishMany(tx, Array.from({ length: 20 }, (_, n) => ({ topic: 'sync.x', payload: { n } }))));
      await eventually(async () => {
        const s = await deliveryOutcomes(db.sql, 'sync-throw', 20);
        return s.succeeded === 10 && s.dead === 10;
      }, 10_000, '10 done and 10 dead');
    } finally {
      await worker.stop();
    }
    const [row] = await db.sql`SELECT last_error FROM crier.deliveries WHERE subscription = 'sync-throw' AND state = 'dead' LIMIT 1`;
    assert.match(row!.last_error as string, /UnrecoverableError: even \d+/);
  });
  test('handlers that return, throw, resolve, reject or return a thenable each settle their own attempt', async () => {
    // Synchronous returns settle without a promise of their own (see HandlerRunner.execute).
    const thenable = (fail: boolean) => ({
      then: (resolve: () => void, reject: (e: Error) => void) => setTimeout(() => (fail ? reject(new UnrecoverableError('thenable')) : resolve()), 1),
    });
    const worker = crier.worker({
      connection: db.url,
      handleSignals: false,
      logger: false,
      subscriptions: [
        {
          name: 'outcomes',
          topics: ['outcomes.#'],
          concurrency: 3,
          batchSize: 24,
          handler: (event: CrierEvent<{ n: number }>) => {
            switch (event.payload.n % 6) {
              case 0: return undefined;
              case 1: throw new UnrecoverableError('sync');
              case 2: return Promise.resolve();
              case 3: return Promise.reject(new UnrecoverableError('async'));
              case 4: return thenable(true);
              default: return thenable(false);
            }
          },
        },
      ],
    });
    await worker.start();
    try {
      await db.sql.begin((tx) => crier.publishMany(tx, Array.from({ length: 60 }, (_, n) => ({ topic: 'outcomes.x', payload: { n } }))));
      await eventually(async () => {
        const s = await deliveryOutcomes(db.sql, 'outcomes', 60);
        return s.succeeded === 30 && s.dead === 30;
      }, 10_000, '30 done and 30 dead');
    } finally {
      await worker.stop();
    }
    // The successes are done rows, or no rows under history 'failures'; the failures are dead either way.
    const rows = await db.sql`
      SELECT (e.payload->>'n')::int % 6 AS kind, d.state FROM crier.deliveries d JOIN crier.events e ON e.id = d.event_id
      WHERE d.subscription = 'outcomes' AND d.state <> 'done' GROUP BY 1, 2 ORDER BY 1`;
    assert.deepEqual(rows.map((r) => `${r.kind}:${r.state}`), ['1:dead', '3:dead', '4:dead']);
  });
});
