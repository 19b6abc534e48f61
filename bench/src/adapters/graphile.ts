// graphile-worker (current release) through its public API. Its best settings come from the sweep;
// `tuning` overrides them: concurrency, localQueueSize (-1 = off), completeJobBatchDelay, failJobBatchDelay
// (-1 = off), pollInterval.
// No fan-out: one job goes to one task.
import { makeWorkerUtils, run, runMigrations, type Logger } from 'graphile-worker';
import pg from 'pg';
import postgres from 'postgres';
import type { Adapter, Tuning } from '../adapter.ts';

import { graphileBest } from './graphile-settings.ts';

const settings = (tuning: Tuning) => ({ ...graphileBest, ...tuning });
// graphile-worker logs every job at debug level and warns on shutdown: keep the bench output readable.
const logger = { scope: () => logger, error: () => {}, warn: () => {}, info: () => {}, debug: () => {} } as unknown as Logger;
const silent = { logger } as { logger: Logger };

// A dropped connection must not crash the cell (graphile-worker checks that handlers exist).
function quietPool(pool: pg.Pool): void {
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
}

export const adapter: Adapter = {
  name: 'graphile',
  fanOut: false,

  async install(url) {
    await runMigrations({ connectionString: url, ...silent });
  },

  async publisher(url, layout, connections) {
    const pgPool = new pg.Pool({ connectionString: url, max: connections });
    quietPool(pgPool);
    const utils = await makeWorkerUtils({ pgPool, ...silent });
    return {
      one: async (payload, queue = 0) => {
        await utils.addJob(layout.queues[queue]!, payload);
      },
      many: async (payloads, queue = 0) => {
        const task = layout.queues[queue]!;
        await utils.addJobs(payloads.map((payload) => ({ identifier: task, payload })));
      },
      close: async () => {
        await utils.release();
        await pgPool.end();
      },
    };
  },

  async worker(url, layout, handle, tuning) {
    const s = settings(tuning);
    const localQueueSize = Number(s.localQueueSize);
    const concurrency = Number(s.concurrency);
    const pgPool = new pg.Pool({ connectionString: url, max: concurrency + 2 });
    quietPool(pgPool);
    const runner = await run({
      pgPool,
      concurrency,
      noHandleSignals: true,
      pollInterval: Number(s.pollInterval),
      ...silent,
      preset: {
        worker: {
          ...(localQueueSize > 1 ? { localQueue: { size: localQueueSize } } : {}),
          completeJobBatchDelay: Number(s.completeJobBatchDelay),
          failJobBatchDelay: Number(s.failJobBatchDelay),
        },
      },
      taskList: Object.fromEntries(layout.queues.map((q) => [q, async (payload: unknown) => void handle(payload)])),
    });
    return {
      async stop() {
        await runner.stop();
        await pgPool.end();
      },
    };
  },

  async remaining(url) {
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    try {
      const [row] = await sql`SELECT count(*)::int AS n FROM graphile_worker._private_jobs`;
      return row!.n as number;
    } finally {
      await sql.end();
    }
  },
};
