// Delayed delivery: nothing is claimable before its time, an idle worker wakes on its own timer
// when the delivery falls due (no NOTIFY comes then), and the NOTIFY of a delayed publish only
// makes it re-arm that timer, it does not make it spin.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createCrier, CrierError } from '../src/index.ts';
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

test('delayed events: never early, handled within 50 ms of due time by an idle worker, no busy polling', async () => {
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
    pollInterval: '30s', // only the due-time timer can explain a prompt delivery
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

    // Four NOTIFYs arrived while idle; each re-arms the timer once. Nothing is due for 700 ms.
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(handledAt.size, 0, 'nothing delivered early');
    const [claimable] = await db.sql`SELECT count(*)::int AS n FROM crier.deliveries WHERE subscription = 'reminders' AND state = 'pending' AND available_at <= now()`;
    assert.equal(claimable!.n, 0);
    assert.ok(claims - claimsBefore <= 15, `an idle worker with delayed work does not spin (${claims - claimsBefore} claims in 500 ms)`);

    await eventually(() => handledAt.size === ids.length, 10_000, 'all delayed events handled');
    const due = await db.sql`SELECT id::text, extract(epoch FROM deliver_at) * 1000 AS due FROM crier.events WHERE id = ANY(${ids}::bigint[])`;
    const lags = due.map((row) => handledAt.get(row.id)! - Number(row.due)).sort((a, b) => a - b);
    for (const lag of lags) assert.ok(lag >= 0, `delivered ${-lag} ms early`);
    const median = lags[Math.floor(lags.length / 2)]!;
    console.log(`# delayed delivery lag (ms): ${lags.map((l) => l.toFixed(1)).join(', ')}`);
    assert.ok(median <= 50, `median lag ${median.toFixed(1)} ms is within 50 ms (lags: ${lags.join(', ')})`);
    assert.ok(lags.at(-1)! < 1000, `worst lag ${lags.at(-1)} ms is far below the 30 s poll`);
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
