// ctx.signal: made only when a handler reads it, yet aborted like any signal. A timeout must reach a
// handler that listens from the start and one that looks only afterwards.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type CrierEvent } from '../src/index.ts';
import { createCrier } from './support/history.ts';
import { createTestDatabase, deliveryStates, eventually, type TestDatabase } from './support/database.ts';

const crier = createCrier();
let db: TestDatabase;
before(async () => {
  db = await createTestDatabase('handler_signal');
});
after(async () => {
  await db.drop();
});

test('a timeout aborts ctx.signal, also for a handler that reads it only afterwards', async () => {
  const seen: { early?: string; late?: string } = {};
  const worker = crier.worker({
    connection: db.url,
    handleSignals: false,
    logger: false,
    subscriptions: [
      {
        name: 'timeouts',
        topics: ['timeouts.#'],
        maxAttempts: 1,
        timeout: '100ms',
        handler: async (event: CrierEvent<{ reads: 'early' | 'late' }>, ctx) => {
          const reads = event.payload.reads;
          const reason = (signal: AbortSignal) => (signal.aborted ? String((signal.reason as Error).message) : 'not aborted');
          if (reads === 'early') {
            const signal = ctx.signal;
            await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
            seen.early = reason(signal);
          } else {
            await new Promise((resolve) => setTimeout(resolve, 300));
            seen.late = reason(ctx.signal);
          }
        },
      },
    ],
  });
  await worker.start();
  try {
    await crier.publishMany(db.sql, [{ topic: 'timeouts.a', payload: { reads: 'early' } }, { topic: 'timeouts.b', payload: { reads: 'late' } }]);
    await eventually(async () => seen.early !== undefined && seen.late !== undefined && (await deliveryStates(db.sql, 'timeouts')).dead === 2, 10_000, 'both timed out');
    assert.deepEqual(seen, { early: 'handler timed out after 100ms', late: 'handler timed out after 100ms' });
  } finally {
    await worker.stop();
  }
});
