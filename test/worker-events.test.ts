// Worker events (worker.on): what happened to each attempt (handled, retry with its retryAt, dead)
// and worker-level trouble (error), with the attempt's facts; a listener that throws is logged once
// and never breaks the worker. Real Postgres, a real worker.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CrierError, type AttemptEvent, type WorkerEvents } from '../src/index.ts';
import { createCrier } from './support/history.ts';
import { createTestDatabase, deliveryOutcomes, eventually, type TestDatabase } from './support/database.ts';

const crier = createCrier();
let db: TestDatabase;
before(async () => {
  db = await createTestDatabase('worker_events_loop');
});
after(async () => {
  await db.drop();
});

type Retry = Parameters<WorkerEvents['retry']>[0];
type Dead = Parameters<WorkerEvents['dead']>[0];

function assertAttempt(e: AttemptEvent, expected: { subscription: string; eventId: string; topic: string; attempt: number }): void {
  assert.deepEqual({ subscription: e.subscription, eventId: e.eventId, topic: e.topic, attempt: e.attempt }, expected);
  assert.match(e.deliveryId, /^\d+$/);
  assert.ok(e.publishedAt instanceof Date && e.startedAt instanceof Date, 'publishedAt and startedAt are Dates');
  assert.ok(e.startedAt.getTime() >= e.publishedAt.getTime() - 1000, 'started after it was published (clocks may differ a little)');
  assert.ok(typeof e.durationMs === 'number' && e.durationMs >= 0);
}

test('handled, retry (with retryAt) and dead carry the attempt; off() stops a listener', async () => {
  const handled: AttemptEvent[] = [];
  const retries: Retry[] = [];
  const dead: Dead[] = [];
  const worker = crier.worker({
    connection: db.url,
    handleSignals: false,
    logger: false,
    subscriptions: [
      {
        name: 'ev-attempts',
        topics: ['ev.#'],
        maxAttempts: 2,
        retry: ['50ms'],
        handler: async (event) => {
          if (event.topic === 'ev.fail') throw new Error('boom');
        },
      },
    ],
  });
  worker.on('handled', (e) => void handled.push(e));
  worker.on('retry', (e) => void retries.push(e));
  const stopDead = worker.on('dead', (e) => void dead.push(e));
  await worker.start();
  try {
    const ok = await crier.publish(db.sql, 'ev.ok', {});
    const failing = await crier.publish(db.sql, 'ev.fail', {});
    await eventually(() => handled.length === 1 && dead.length === 1, 15_000, 'handled and dead');

    assertAttempt(handled[0]!, { subscription: 'ev-attempts', eventId: ok.id, topic: 'ev.ok', attempt: 1 });
    assert.equal(retries.length, 1);
    const [retry] = retries;
    assertAttempt(retry!, { subscription: 'ev-attempts', eventId: failing.id, topic: 'ev.fail', attempt: 1 });
    assert.ok(retry!.error instanceof Error && retry!.error.message === 'boom', 'the error the handler threw');
    assert.ok(retry!.retryAt instanceof Date && retry!.retryAt.getTime() > retry!.startedAt.getTime(), 'retryAt: when the retry falls due');
    assertAttempt(dead[0]!, { subscription: 'ev-attempts', eventId: failing.id, topic: 'ev.fail', attempt: 2 });
    assert.equal(dead[0]!.deliveryId, retry!.deliveryId);
    assert.ok(dead[0]!.error instanceof Error);

    stopDead();
    await crier.publish(db.sql, 'ev.fail', {});
    await eventually(() => retries.length === 2, 15_000, 'second retry');
    await eventually(async () => (await db.sql`SELECT count(*)::int AS n FROM crier.deliveries WHERE state = 'dead'`)[0]!.n === 2, 15_000, 'second dead');
    assert.equal(dead.length, 1, 'the unsubscribed listener heard nothing more');
  } finally {
    await worker.stop();
  }
});

test('a listener that throws (or rejects) is logged once and breaks nothing', async () => {
  const errors: string[] = [];
  let handled = 0;
  const worker = crier.worker({
    connection: db.url,
    handleSignals: false,
    logger: { info() {}, warn() {}, error: (m: string) => void errors.push(m) },
    subscriptions: [{ name: 'ev-throwing', topics: ['evt.#'], handler: () => {} }],
  });
  worker.on('handled', () => {
    throw new Error('plain listener bug');
  });
  worker.on('handled', async () => {
    throw new Error('rejected listener bug');
  });
  worker.on('handled', () => void handled++);
  worker.on('error', () => {
    throw new Error('never an uncaught exception');
  });
  await worker.start();
  try {
    for (let i = 0; i < 3; i++) await crier.publish(db.sql, 'evt.x', { i });
    await eventually(() => handled === 3, 15_000, 'all three handled, the later listener included');
    await eventually(async () => (await deliveryOutcomes(db.sql, 'ev-throwing', 3)).succeeded === 3, 10_000, 'acked');
    await eventually(() => errors.length === 2, 5000, 'both listener failures logged');
    assert.equal(errors.filter((m) => m.includes('(plain listener bug)')).length, 1, `once per listener: ${errors.join('\n')}`);
    assert.equal(errors.filter((m) => m.includes('rejected listener bug')).length, 1);
  } finally {
    await worker.stop();
  }
});

test('worker-level trouble is an error event: a lease lost to another attempt', async () => {
  const troubles: Parameters<WorkerEvents['error']>[0][] = [];
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let started = false;
  const worker = crier.worker({
    connection: db.url,
    handleSignals: false,
    logger: false,
    subscriptions: [
      {
        name: 'ev-lease',
        topics: ['evl.#'],
        lease: '600ms',
        handler: async () => {
          started = true;
          await gate;
        },
      },
    ],
  });
  worker.on('error', (e) => void troubles.push(e));
  await worker.start();
  try {
    const event = await crier.publish(db.sql, 'evl.x', {});
    await eventually(() => started, 10_000, 'handler started');
    await db.sql`UPDATE crier.deliveries SET worker = 'thief', attempts = attempts + 1 WHERE event_id = ${event.id}`;
    await eventually(() => troubles.length > 0, 10_000, 'an error event');
    const [trouble] = troubles;
    assert.equal(trouble!.subscription, 'ev-lease');
    assert.match(trouble!.message, /lease lost/);
    assert.ok(trouble!.error instanceof Error);
  } finally {
    release();
    await worker.stop();
  }
});

test('on() refuses an unknown event name or a listener that is not a function', () => {
  const worker = crier.worker({ connection: db.url, handleSignals: false, logger: false, subscriptions: [{ name: 'ev-x', topics: ['x'], handler: () => {} }] });
  assert.throws(() => worker.on('dead-letter' as 'dead', () => {}), (e: unknown) => e instanceof CrierError && e.code === 'CRIER_INVALID_OPTION' && /handled, retry, dead, error/.test(e.message));
  assert.throws(() => worker.on('dead', 'nope' as never), /must be a function/);
});
