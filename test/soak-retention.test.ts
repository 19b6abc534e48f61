// The soak prunes while it runs, and the checker then judges what is left (issue 21). An event whose
// deliveries finished at different times (one retried after a lease expired, say) must stay in the
// log while any of its deliveries does, with its handlers' records: otherwise the checker sees a done
// delivery with no finished handling and reports "completed by an attempt that did not finish".
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { check, handledTable } from '../faults/checker.ts';
import { forgetPrunedHandlings, pruneLikeAnOperator } from '../faults/retention.ts';
import { createCrier } from './support/history.ts';
import { Protocol } from '../src/worker/protocol.ts';
import { declareSubscriptions } from '../src/subscriptions.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

const crier = createCrier();
let db: TestDatabase;
before(async () => {
  db = await createTestDatabase('soak_retention');
  await db.sql.unsafe(handledTable);
  await declareSubscriptions(db.sql, 'crier', [
    { name: 'faults', topics: ['faults.event'] },
    { name: 'faults-tx', topics: ['faults.event'] },
  ]);
});
after(async () => {
  await db.drop();
});

test('soak retention keeps an event (and its handlings) while one of its deliveries is kept', async () => {
  const protocol = new Protocol(db.sql, 'crier', 'w1');
  const payload = { producer: 'p1', seq: 1, rollback: false };
  const old = await crier.publish(db.sql, 'faults.event', payload); // both deliveries finished long ago
  const split = await crier.publish(db.sql, 'faults.event', { ...payload, seq: 2 }); // one long ago, one just now
  for (const subscription of ['faults', 'faults-tx']) {
    for (const delivery of await protocol.claim(subscription, 10)) {
      await db.sql`INSERT INTO ${db.sql(subscription === 'faults' ? 'handled' : 'handled_tx')} (event_id, worker, attempt, rollback)
                   VALUES (${delivery.eventId}, 'w1', ${delivery.attempt}, false)`;
      assert.equal((await protocol.complete([delivery.deliveryId], [delivery.attempt])).size, 1);
    }
  }
  // Published and finished a minute ago, except the split event's faults-tx delivery (just now).
  await db.sql`UPDATE crier.events SET created_at = created_at - interval '1 minute'`;
  await db.sql`UPDATE crier.deliveries SET created_at = created_at - interval '1 minute',
                 finished_at = finished_at - interval '1 minute'
               WHERE NOT (event_id = ${split.id} AND subscription = 'faults-tx')`;

  const pruned = await pruneLikeAnOperator(db.sql, '30s');
  await forgetPrunedHandlings(db.sql);
  assert.deepEqual(pruned, { deliveries: 3, events: 1 });
  const events = await db.sql`SELECT id::text FROM crier.events ORDER BY id`;
  assert.deepEqual(events.map((e) => e.id), [split.id], `event ${old.id} pruned, ${split.id} kept for its recent delivery`);
  const verdict = await check(db.sql, [], []);
  assert.equal(verdict.wrongWinner, 0, 'every done delivery left has its finished handling');
  assert.equal(verdict.lost, 0);
});
