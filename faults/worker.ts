// A worker process for the fault suite, serving three subscriptions on the same events stream:
//
//   faults          plain (at-least-once) on faults.event; the handler's last step inserts a row
//                   into `handled`, so a row there means "handled to the end" (duplicates allowed)
//   faults-tx       transactional on faults.event; the handler inserts into `handled_tx` through
//                   ctx.tx, so the row commits with the ack or not at all: exactly one per event
//   faults-ordered  ordered (per-key FIFO) on faults.keyed, not transactional; the handler inserts
//                   a 'start' row first and a 'done' row last into `handled_ordered`, each in its own
//                   autocommit statement numbered by one sequence: the checker reads the order of
//                   starts and completions per key from it (see checker.ts)
//
// Environment: DATABASE_URL, WORKER_ID, HISTORY (the subscriptions' history: full, the default, or
// failures: a delivery that succeeds at its first attempt leaves no row, so the checker proves those
// from the records above), LEASE (duration), CONCURRENCY (per subscription),
// HANDLER_MS (max random handler time), HANDLER_TIMEOUT (duration), WORKER_DATABASE_URL (the
// worker's own connection, e.g. through the suite's stall proxy; the handlers' records then go to
// DATABASE_URL directly, so that what is measured is crier's recovery, not the test's). Events whose payload says
// hang=true hang on their first attempt until the handler times out or the lease is lost.
import postgres from 'postgres';
import { createCrier, type Duration, type HandlerContext, type SubscriptionHistory } from '../src/index.ts';

const env = process.env;
const workerId = env.WORKER_ID ?? `w${process.pid}`;
const handlerMs = Number(env.HANDLER_MS ?? 5);
const concurrency = Number(env.CONCURRENCY ?? 8);
// Each running transactional handler holds a connection of this pool: 8 of them, plus claims and acks.
// fetch_types: false as the worker sets on a client it opens itself (src/worker/worker.ts): postgres.js
// 3.4 fetches array types on each new connection without handling that query's failure, so a
// connection terminated right then ends the process with an unhandled CONNECTION_CLOSED.
const sql = postgres(env.WORKER_DATABASE_URL ?? env.DATABASE_URL!, { max: 10 + concurrency, onnotice: () => {}, connect_timeout: 5, fetch_types: false });
const records = env.WORKER_DATABASE_URL ? postgres(env.DATABASE_URL!, { max: concurrency, onnotice: () => {}, connect_timeout: 5, fetch_types: false }) : sql;
// Timestamped, so that a broken recovery bound can be read against the harness's clock.
const log = (message: string) => console.log(`[${workerId} ${new Date().toISOString().slice(11, 23)}] ${message}`);

interface FaultPayload {
  rollback: boolean;
  hang: boolean;
}

/** The handler's work: a hang on the first attempt if asked, then a random short pause. */
async function work(payload: FaultPayload, ctx: Pick<HandlerContext, 'attempt' | 'signal'>): Promise<void> {
  if (payload.hang && ctx.attempt === 1) {
    await new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)));
  }
  if (handlerMs > 0) await new Promise((resolve) => setTimeout(resolve, Math.random() * handlerMs));
}

const common = {
  history: (env.HISTORY ?? 'full') as SubscriptionHistory,
  lease: (env.LEASE ?? '1s') as Duration,
  maxAttempts: 1000,
  backoff: { base: '20ms', max: '500ms' },
  concurrency,
  timeout: (env.HANDLER_TIMEOUT ?? '3s') as Duration,
} as const;

const worker = createCrier().worker({
  connection: sql,
  workerId,
  pollInterval: '250ms',
  shutdownTimeout: '2s',
  logger: { info: log, warn: log, error: log },
  subscriptions: [
    {
      name: 'faults',
      topics: ['faults.event'],
      ...common,
      handler: async (event, ctx) => {
        const payload = event.payload as FaultPayload;
        await work(payload, ctx);
        await records`INSERT INTO handled (event_id, worker, attempt, rollback)
                  VALUES (${event.id}, ${workerId}, ${ctx.attempt}, ${payload.rollback})`;
      },
    },
    {
      name: 'faults-tx',
      topics: ['faults.event'],
      transactional: true,
      ...common,
      handler: async (event, ctx) => {
        const payload = event.payload as FaultPayload;
        await work(payload, ctx);
        await ctx.tx`INSERT INTO handled_tx (event_id, worker, attempt, rollback)
                     VALUES (${event.id}, ${workerId}, ${ctx.attempt}, ${payload.rollback})`;
      },
    },
    {
      name: 'faults-ordered',
      topics: ['faults.keyed'],
      ordered: true,
      ...common,
      handler: async (event, ctx) => {
        const payload = event.payload as FaultPayload;
        const record = (phase: 'start' | 'done') => records`
          INSERT INTO handled_ordered (event_id, key, worker, attempt, phase, rollback)
          VALUES (${event.id}, ${event.key}, ${workerId}, ${ctx.attempt}, ${phase}, ${payload.rollback})`;
        await record('start');
        await work(payload, ctx);
        await record('done');
      },
    },
  ],
});

process.on('unhandledRejection', (error) => {
  log(`CRASH unhandled rejection: ${(error as Error)?.stack ?? String(error)}`);
  process.exit(70);
});
// A worker started in place of a dead one may find Postgres still in crash recovery: wait for it.
for (let tries = 0; ; tries++) {
  try {
    await sql`SELECT 1`;
    break;
  } catch (error) {
    if (tries > 100) throw error;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
await worker.start();
console.log('ready');
