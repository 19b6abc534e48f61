import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createCrier, UnrecoverableError, type CrierEvent } from '../src/index.ts';
import { createTestDatabase, deliveryStates, eventually, type TestDatabase } from './support/database.ts';

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
        const s = await deliveryStates(db.sql, 'basic');
        return s.done === 21 && s.dead === 2;
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
});
