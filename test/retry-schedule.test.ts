// Retry schedules (issue 14 item 6): a subscription's fixed list of delays instead of exponential
// backoff, and a handler's RetryLater for one failure. Each retry's delay is read from the row, on
// the database's clock: available_at minus the time its failure was recorded (errors[-1].at, the
// same now() crier.fail counted from), so the figures are exact whatever the machine's load.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CrierError, RetryLater, type Duration } from '../src/index.ts';
import { createCrier, drain } from './support/history.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/database.ts';

const crier = createCrier();
let db: TestDatabase;
before(async () => {
  db = await createTestDatabase('retry_schedule');
});
after(async () => {
  await db.drop();
});

/** The delay the last failure of the subscription's delivery scheduled, in ms. */
async function lastDelayMs(subscription: string): Promise<{ delay: number; state: string; attempts: number }> {
  const [row] = await db.sql`
    SELECT extract(epoch FROM available_at - (errors -> -1 ->> 'at')::timestamptz) * 1000 AS delay, state, attempts
    FROM crier.deliveries WHERE subscription = ${subscription}`;
  return { delay: Math.round(Number(row!.delay)), state: row!.state, attempts: row!.attempts };
}

test('a fixed retry schedule: each retry waits its entry, the last entry repeats, then dead', async () => {
  const delays: number[] = [];
  const worker = crier.worker({
    connection: db.url,
    handleSignals: false,
    logger: false,
    pollInterval: '60s',
    subscriptions: [
      {
        name: 'tiers',
        topics: ['tiers.#'],
        retry: ['150ms', '400ms', '0.25s'],
        maxAttempts: 5,
        handler: async (_event, ctx) => {
          if (ctx.attempt > 1) delays.push((await lastDelayMs('tiers')).delay);
          throw new Error(`attempt ${ctx.attempt} fails`);
        },
      },
    ],
  });
  await worker.start();
  try {
    await crier.publish(db.sql, 'tiers.x', {});
    await eventually(async () => (await lastDelayMs('tiers').catch(() => ({ state: '' }))).state === 'dead', 20_000, 'dead after 5 attempts');
    assert.deepEqual(delays, [150, 400, 250, 250], 'entry n after failed attempt n; the last one repeats');
    const last = await lastDelayMs('tiers');
    assert.equal(last.attempts, 5);
  } finally {
    await worker.stop();
  }
});

test('RetryLater sets one retry\'s delay, over the backoff; the attempt still counts', async () => {
  const delays: number[] = [];
  const worker = crier.worker({
    connection: db.url,
    handleSignals: false,
    logger: false,
    pollInterval: '60s',
    subscriptions: [
      {
        name: 'later',
        topics: ['later.#'],
        backoff: { base: '10m', max: '1h' }, // a backoff retry would not come back during this test
        maxAttempts: 3,
        handler: async (_event, ctx) => {
          if (ctx.attempt > 1) delays.push((await lastDelayMs('later')).delay);
          if (ctx.attempt === 1) throw new RetryLater('300ms', 'rate limited');
          if (ctx.attempt === 2) throw new RetryLater(200);
        },
      },
    ],
  });
  await worker.start();
  try {
    await crier.publish(db.sql, 'later.x', {});
    await eventually(async () => (await lastDelayMs('later').catch(() => ({ state: '' }))).state === 'done', 20_000, 'done on the third attempt');
    assert.deepEqual(delays, [300, 200]);
    const [row] = await db.sql`SELECT attempts, errors FROM crier.deliveries WHERE subscription = 'later'`;
    assert.equal(row!.attempts, 3);
    assert.deepEqual(row!.errors.map((e: { error: string }) => e.error), ['RetryLater: rate limited', 'RetryLater: retry requested in 200ms']);
  } finally {
    await worker.stop();
  }
});

test('RetryLater on the last attempt: dead, like any failure', async () => {
  const result = await drain(db.url, [
    { name: 'last-try', topics: ['last.#'], maxAttempts: 1, handler: () => { throw new RetryLater('1s'); } },
  ]);
  assert.equal(result.dead, 0, 'nothing published yet');
  await crier.publish(db.sql, 'last.x', {});
  const second = await drain(db.url, [
    { name: 'last-try', topics: ['last.#'], maxAttempts: 1, handler: () => { throw new RetryLater('1s'); } },
  ]);
  assert.equal(second.dead, 1);
});

test('crier/testing drain follows the retry schedule', async () => {
  const subscription = { name: 'drained', topics: ['drained.#'], retry: ['2s'] as Duration[], maxAttempts: 3, handler: () => { throw new Error('no'); } };
  await drain(db.url, [subscription]);
  await crier.publish(db.sql, 'drained.x', {});
  const result = await drain(db.url, [subscription]);
  assert.equal(result.retried, 1);
  assert.equal((await lastDelayMs('drained')).delay, 2000);
});

test('retry schedules and RetryLater delays are checked', () => {
  const invalid = (e: unknown) => e instanceof CrierError && e.code === 'CRIER_INVALID_OPTION';
  const worker = (retry: unknown, extra: object = {}) =>
    crier.worker({
      connection: db.url,
      handleSignals: false,
      logger: false,
      subscriptions: [{ name: 's', topics: ['s'], retry: retry as Duration[], ...extra, handler: () => {} }],
    });
  assert.throws(() => worker([]), invalid);
  assert.throws(() => worker(['5 minutes']), invalid);
  assert.throws(() => worker(['30d']), invalid);
  assert.throws(() => worker(['5s'], { backoff: { base: '1s' } }), invalid);
  assert.throws(() => new RetryLater('soon' as Duration), invalid);
  assert.throws(() => new RetryLater(-5), invalid);
  assert.equal(new RetryLater('1.5s').delayMs, 1500);
});
