// Delayed delivery: nothing is handled before its time, an idle worker wakes on its own timer
// when the delivery falls due (no NOTIFY comes then), and the NOTIFY of a delayed publish only
// makes it re-arm that timer, it does not make it spin.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CrierError } from '../src/index.ts';
import { createCrier } from './support/history.ts';
import { Protocol } from '../src/worker/protocol.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/database.ts';

const crier = createCrier();
let db: TestDatabase;
before(async () => {
  db = await createTestDatabase('delayed');
});
after(async () => {
  await db.drop();
});

test('delayed events: never early, handled by an idle worker on its own timer, no busy polling', async () => {
  // Causality, not wall-clock bounds (a busy machine can delay anything): with an hour-long poll,
  // only the due-time timer can make the worker claim delayed work during this test; each event is
  // handled at or after its due time; and the wake-ups of the delayed publishes do not make it spin.
  let claims = 0;
  const claim = Protocol.prototype.claim;
  Protocol.prototype.claim = function (this: Protocol, ...args: Parameters<typeof claim>) {
    claims++;
    return claim.apply(this, args);
  };
  const handledAt = new Map<string, number>();
  const worker = crier.worker({
    connection: db.url,
    handleSignals: false,
    logger: false,
    pollInterval: '1h', // only the due-time timer can explain a delivery
    subscriptions: [{ name: 'reminders', topics: ['remind.#'], handler: (event) => void handledAt.set(event.id, Date.now()) }],
  });
  await worker.start();
  try {
    await eventually(async () => (await db.sql`SELECT 1 FROM crier.parked_workers WHERE subscription = 'reminders'`).length === 1, 10_000, 'worker parked');
    const claimsBefore = claims;
    const published = [
      await crier.publish(db.sql, 'remind.a', { n: 0 }, { delay: '700ms' }),
      await crier.publish(db.sql, 'remind.a', { n: 1 }, { delay: 900 }),
      await crier.publish(db.sql, 'remind.a', { n: 2 }, { deliverAt: new Date(Date.now() + 1100) }),
      await crier.publish(db.sql, 'remind.a', { n: 3 }, { delay: '1300ms' }),
    ];
    const [viaSql] = await db.sql`SELECT crier.publish('remind.a', '{"n": 4}', p_deliver_at => now() + interval '1500 ms')::text AS id`;
    const ids = [...published.map((e) => e.id), viaSql!.id as string];

    // NOTIFYs arrived while idle; each re-arms the timer once. Each of the five wake-ups costs at
    // most a claim, a park (re-arming the wake-up) and a re-check claim; a spinning loop would make
    // hundreds. (A slow machine makes fewer claims in this window, never more.)
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.ok(claims - claimsBefore <= 25, `an idle worker with delayed work does not spin (${claims - claimsBefore} claims in 500 ms)`);

    await eventually(() => handledAt.size === ids.length, 30_000, 'all delayed events handled (the poll is an hour away)');
    const due = await db.sql`SELECT id::text, extract(epoch FROM deliver_at) * 1000 AS due FROM crier.events WHERE id = ANY(${ids}::bigint[])`;
    const lags = due.map((row) => handledAt.get(row.id)! - Number(row.due)).sort((a, b) => a - b);
    for (const lag of lags) assert.ok(lag >= 0, `delivered ${-lag} ms early`);
    // For the record only: how late the timer was is a figure for bench/, not an assertion here.
    console.log(`# delayed delivery lag (ms): ${lags.map((l) => l.toFixed(1)).join(', ')}`);
  } finally {
    Protocol.prototype.claim = claim;
    await worker.stop();
  }
});

test('deliverAt and delay are checked', async () => {
  const invalid = (e: unknown) => e instanceof CrierError && e.code === 'CRIER_INVALID_OPTION';
  await assert.rejects(crier.publish(db.sql, 'remind.b', {}, { delay: '5 minutes' as never }), invalid);
  await assert.rejects(crier.publish(db.sql, 'remind.b', {}, { deliverAt: new Date('nope') }), invalid);
  await assert.rejects(crier.publish(db.sql, 'remind.b', {}, { delay: 5, deliverAt: new Date() }), invalid);
  const past = await crier.publish(db.sql, 'remind.b', {}, { deliverAt: new Date(Date.now() - 60_000) });
  const [row] = await db.sql`SELECT deliver_at < now() AS past FROM crier.events WHERE id = ${past.id}`;
  assert.equal(row!.past, true, 'a time in the past is simply due');
});
