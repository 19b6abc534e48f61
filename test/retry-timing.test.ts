// A retry is due when its backoff says, not when the next poll comes (issue 16 item 1). crier.fail
// sends no NOTIFY, and its ack is written after the handler settles: the loop may already have
// claimed, found nothing due (the delivery was still running) and gone to sleep for a poll
// interval. The worker must wake for the retry on its own. The poll here is 60 s and the bounds
// are 20 s (50 s where acks are held back on purpose): only a lost wake-up can break them, not a
// slow machine.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createCrier } from './support/history.ts';
import { Protocol } from '../src/worker/protocol.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/database.ts';

const crier = createCrier();
let db: TestDatabase;
before(async () => {
  db = await createTestDatabase('retry_timing');
});
after(async () => {
  await db.drop();
});

/** A worker whose handler fails `failures` times per event, recording when each attempt starts. */
function failingWorker(subscription: string, failures: number, starts: number[]) {
  return crier.worker({
    connection: db.url,
    handleSignals: false,
    logger: false,
    pollInterval: '60s',
    subscriptions: [
      {
        name: subscription,
        topics: [`${subscription}.#`],
        backoff: { base: '100ms', max: '200ms' },
        maxAttempts: 5,
        handler: (_event, ctx) => {
          starts.push(Date.now());
          if (ctx.attempt <= failures) throw new Error(`attempt ${ctx.attempt} fails`);
        },
      },
    ],
  });
}

async function parked(subscription: string): Promise<boolean> {
  return (await db.sql`SELECT 1 FROM crier.parked_workers WHERE subscription = ${subscription}`).length > 0;
}

const gaps = (starts: number[]) => starts.slice(1).map((t, i) => t - starts[i]!);

test('a retry whose fail ack lands after the loop went idle starts at its due time, not at the next poll', async () => {
  // Forces the interleaving: the fail ack is held back until the loop has gone idle after the
  // failure (a re-check claim found nothing due, the delivery being still running, and no
  // transaction it must wait for), so only a wake-up for the retry can bring it back before the poll.
  const { claimOrIdle } = Protocol.prototype;
  let idles = 0;
  Protocol.prototype.claimOrIdle = async function (this: Protocol, ...args: Parameters<typeof claimOrIdle>) {
    const outcome = await claimOrIdle.apply(this, args);
    const [, , , park] = args;
    if (!park && outcome.deliveries.length === 0 && outcome.running === null) idles++;
    return outcome;
  };
  const { fail } = Protocol.prototype;
  let heldBack = 0;
  Protocol.prototype.fail = async function (this: Protocol, ...args: Parameters<typeof fail>) {
    const before = idles;
    // The shared server's other transactions can keep the loop re-checking for a while: wait for it.
    await eventually(() => idles > before, 15_000, 'the loop idle after the failure').catch(() => {});
    if (idles > before) heldBack++;
    await new Promise((resolve) => setTimeout(resolve, 50));
    return fail.apply(this, args);
  };
  const starts: number[] = [];
  const worker = failingWorker('late_ack', 2, starts);
  await worker.start();
  try {
    await eventually(() => parked('late_ack'), 10_000, 'worker parked');
    await crier.publish(db.sql, 'late_ack.x', {});
    await eventually(
      async () => (await db.sql`SELECT 1 FROM crier.deliveries WHERE subscription = 'late_ack' AND state = 'done'`).length === 1,
      50_000,
      'the delivery done after two failures, before a 60 s poll could have found its retries',
    );
    assert.equal(starts.length, 3);
    // Not asserted (the shared server's load decides it): how many acks really landed after idling.
    console.log(`# attempt gaps with fail acks held until the loop idled (ms): ${gaps(starts).join(', ')}; held ${heldBack} of 2`);
  } finally {
    Protocol.prototype.fail = fail;
    Protocol.prototype.claimOrIdle = claimOrIdle;
    await worker.stop();
  }
});

test('retries follow the backoff whatever the poll interval: three failures, then done', async () => {
  const starts: number[] = [];
  const worker = failingWorker('prompt', 3, starts);
  await worker.start();
  try {
    await eventually(() => parked('prompt'), 10_000, 'worker parked');
    await crier.publish(db.sql, 'prompt.x', {});
    await eventually(
      async () => (await db.sql`SELECT 1 FROM crier.deliveries WHERE subscription = 'prompt' AND state = 'done'`).length === 1,
      20_000,
      'the delivery done after three failures, long before a 60 s poll could have found its retries',
    );
    const [row] = await db.sql`SELECT attempts FROM crier.deliveries WHERE subscription = 'prompt'`;
    assert.equal(row!.attempts, 4);
    console.log(`# attempt gaps (ms; backoff 100-200 ms): ${gaps(starts).join(', ')}`);
  } finally {
    await worker.stop();
  }
});

test('the next event of a key, released by the ack of the one before it, starts without waiting for the poll', async () => {
  const handled: number[] = [];
  const worker = crier.worker({
    connection: db.url,
    handleSignals: false,
    logger: false,
    pollInterval: '60s',
    subscriptions: [
      {
        name: 'keyed',
        topics: ['keyed.#'],
        ordered: true,
        backoff: { base: '100ms', max: '200ms' },
        handler: (event, ctx) => {
          const { n } = event.payload as { n: number };
          if (n === 1 && ctx.attempt === 1) throw new Error('the head fails once: its key waits for its retry');
          handled.push(n);
        },
      },
    ],
  });
  await worker.start();
  try {
    await eventually(() => parked('keyed'), 10_000, 'worker parked');
    await db.sql.begin((tx) => crier.publishMany(tx, [1, 2, 3].map((n) => ({ topic: 'keyed.x', key: 'k', payload: { n } }))));
    await eventually(() => handled.length === 3, 20_000, 'the key drained, long before a 60 s poll');
    assert.deepEqual(handled, [1, 2, 3]);
  } finally {
    await worker.stop();
  }
});
