// A worker process for the fault suite. Every successful handling is recorded in table `handled`
// (created by the runner) as the handler's last step, so a row there means "handled to the end".
// Environment: DATABASE_URL, WORKER_ID, LEASE (duration), CONCURRENCY, HANDLER_MS (max random
// handler time), HANDLER_TIMEOUT (duration). Events whose payload says hang=true hang on their first
// attempt until the handler times out or the lease is lost.
import postgres from 'postgres';
import { createCrier, type Duration } from '../src/index.ts';

const env = process.env;
const workerId = env.WORKER_ID ?? `w${process.pid}`;
const handlerMs = Number(env.HANDLER_MS ?? 5);
const sql = postgres(env.DATABASE_URL!, { max: 10, onnotice: () => {}, connect_timeout: 5 });
const log = (message: string) => console.log(`[${workerId}] ${message}`);

interface FaultPayload {
  producer: string;
  seq: number;
  rollback: boolean;
  hang: boolean;
}

const worker = createCrier().worker({
  connection: sql,
  workerId,
  pollInterval: '250ms',
  shutdownTimeout: '2s',
  logger: { info: log, warn: log, error: log },
  subscriptions: [
    {
      name: 'faults',
      topics: ['faults.#'],
      lease: (env.LEASE ?? '1s') as Duration,
      maxAttempts: 1000,
      backoff: { base: '20ms', max: '500ms' },
      concurrency: Number(env.CONCURRENCY ?? 8),
      timeout: (env.HANDLER_TIMEOUT ?? '30s') as Duration,
      handler: async (event, ctx) => {
        const payload = event.payload as FaultPayload;
        if (payload.hang && ctx.attempt === 1) {
          await new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)));
        }
        if (handlerMs > 0) await new Promise((resolve) => setTimeout(resolve, Math.random() * handlerMs));
        await sql`INSERT INTO handled (event_id, worker, attempt, rollback)
                  VALUES (${event.id}, ${workerId}, ${ctx.attempt}, ${payload.rollback})`;
      },
    },
  ],
});

process.on('unhandledRejection', (error) => {
  log(`CRASH unhandled rejection: ${(error as Error)?.stack ?? String(error)}`);
  process.exit(70);
});
await worker.start();
console.log('ready');
