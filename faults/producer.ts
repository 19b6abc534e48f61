// A producer process for the fault suite: publishes batches in transactions, half of each batch,
// a pause (a window to be killed or cut off in), the other half, then commits, or rolls back on
// purpose (ROLLBACK_RATE). It prints "committed <from> <to>" only after COMMIT returned: the
// checker holds Postgres to those. Environment: DATABASE_URL, PRODUCER_ID, DURATION_MS, BATCH,
// MID_TX_MS, PAUSE_MS, ROLLBACK_RATE, HANG_RATE (share of events whose handler will hang once),
// RATE (events/s to aim at; replaces PAUSE_MS: a steady load for the soak).
//
// Each transaction also publishes two keyed events (topic faults.keyed, for the ordered
// subscription), one in each half, both with the key `<producer>-k<n % 8>` of its n-th transaction:
// a producer owns its 8 keys, so publish order per key is known without asking crier (seq, then
// pos), and each transaction takes one key only, so it cannot deadlock with batched acks that lock
// keys in order (docs/guarantees.md).
import postgres from 'postgres';
import { createCrier } from '../src/index.ts';

const env = process.env;
const producer = env.PRODUCER_ID ?? `p${process.pid}`;
const batch = Number(env.BATCH ?? 10);
const midTxMs = Number(env.MID_TX_MS ?? 5);
const pauseMs = Number(env.PAUSE_MS ?? 20);
const rollbackRate = Number(env.ROLLBACK_RATE ?? 0.1);
const hangRate = Number(env.HANG_RATE ?? 0);
const rate = Number(env.RATE ?? 0);
const startedAt = Date.now();
const end = Date.now() + Number(env.DURATION_MS ?? 5000);
// Reconnect delays bounded as crier bounds its own: postgres.js 4.x's default grows to 20 s after
// a few failed attempts, and producers that come back late after a restart leave the workers
// nothing to handle, which the recovery bound (recovery.ts) would blame on the workers.
const sql = postgres(env.DATABASE_URL!, { max: 1, onnotice: () => {}, connect_timeout: 5, backoff: (attempts: number) => Math.min(1, 0.05 * 2 ** attempts) });
const crier = createCrier();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

class RollBack extends Error {}

let seq = 0;
console.log('ready');
while (Date.now() < end) {
  const from = seq + 1;
  seq += batch;
  const rollback = Math.random() < rollbackRate;
  const events = Array.from({ length: batch }, (_, i) => ({
    topic: 'faults.event',
    payload: { producer, seq: from + i, rollback, hang: Math.random() < hangRate },
  }));
  const keyed = (pos: number) => ({
    topic: 'faults.keyed',
    key: `${producer}-k${(from - 1) / batch % 8}`,
    payload: { producer, seq: from, pos, rollback, hang: Math.random() < hangRate },
  });
  try {
    await sql.begin(async (tx) => {
      await crier.publishMany(tx, [...events.slice(0, batch / 2), keyed(0)]);
      await sleep(Math.random() * midTxMs);
      await crier.publishMany(tx, [...events.slice(batch / 2), keyed(1)]);
      if (rollback) throw new RollBack();
    });
    console.log(`committed ${from} ${seq}`);
  } catch (error) {
    if (!(error instanceof RollBack)) {
      console.log(`failed ${from} ${seq}: ${(error as Error).message}`);
      await sleep(50);
    }
  }
  await sleep(rate > 0 ? startedAt + (seq / rate) * 1000 - Date.now() : Math.random() * pauseMs);
}
await sql.end({ timeout: 1 });
console.log('done');
