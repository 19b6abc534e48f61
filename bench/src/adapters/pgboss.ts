// pg-boss (current major) through its public API. Its best settings come from the sweep
// (bench/src/sweep.ts, figures in docs/benchmarks.md); `tuning` overrides them:
//   batchSize, burstWhenBatchFull, localConcurrency, notify (queue notify + useListenNotify),
//   pollingIntervalSeconds.
import { PgBoss } from 'pg-boss';
import postgres from 'postgres';
import type { Adapter, Layout, Tuning } from '../adapter.ts';

import { pgbossBest } from './pgboss-settings.ts';

const settings = (tuning: Tuning) => ({ ...pgbossBest, ...tuning });
const quiet = (boss: PgBoss) => {
  boss.on('error', (error: unknown) => console.error(`[pg-boss] ${(error as Error).message}`));
  boss.on('warning' as any, () => {});
  return boss;
};
const fanned = (layout: Layout) => layout.queues.length > 1 && layout.topics === undefined;

export const adapter: Adapter = {
  name: 'pgboss',
  fanOut: true,

  async install(url, layout, tuning) {
    const boss = quiet(new PgBoss({ connectionString: url, max: 2, supervise: false, schedule: false }));
    await boss.start();
    for (const queue of layout.queues) {
      await boss.createQueue(queue, { notify: Boolean(settings(tuning).notify) });
      if (fanned(layout)) await boss.subscribe(layout.topic, queue);
    }
    await boss.stop({ graceful: false, close: true });
  },

  async publisher(url, layout, connections, tuning) {
    const boss = quiet(
      new PgBoss({ connectionString: url, max: connections, supervise: false, schedule: false, migrate: false }),
    );
    await boss.start();
    void tuning;
    return {
      one: async (payload, queue = 0) => {
        if (fanned(layout)) await boss.publish(layout.topic, payload);
        else await boss.send(layout.queues[queue]!, payload);
      },
      many: async (payloads, queue = 0) => {
        await boss.insert(layout.queues[queue]!, payloads.map((data) => ({ data })));
      },
      close: () => boss.stop({ graceful: false, close: true }),
    };
  },

  async worker(url, layout, handle, tuning) {
    const s = settings(tuning);
    const boss = quiet(
      // pg-boss names its connections itself: take the bench's name for the worker when it gives one.
      new PgBoss({ connectionString: url, max: 10, useListenNotify: Boolean(s.notify), schedule: false, ...(process.env.PGAPPNAME ? { application_name: process.env.PGAPPNAME } : {}) }),
    );
    await boss.start();
    for (const queue of layout.queues) {
      await boss.work(
        queue,
        {
          batchSize: Number(s.batchSize),
          burstWhenBatchFull: Boolean(s.burstWhenBatchFull),
          localConcurrency: Number(s.localConcurrency),
          pollingIntervalSeconds: Number(s.pollingIntervalSeconds),
        },
        async (jobs: { data: unknown }[]) => {
          for (const job of jobs) handle(job.data);
        },
      );
    }
    return { stop: () => boss.stop({ graceful: true, close: true, timeout: 10_000 }) };
  },

  async remaining(url) {
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    try {
      const [row] = await sql`SELECT count(*)::int AS n FROM pgboss.job WHERE state IN ('created', 'retry', 'active')`;
      return row!.n as number;
    } finally {
      await sql.end();
    }
  },
};
