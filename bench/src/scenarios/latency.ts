// latency: an idle worker; N events published one per transaction at 100/s; for each event the time
// from its commit (the publish call returning) to its handler starting, in the worker's process.
import { now } from '../clock.ts';
import { makePayload } from '../payload.ts';
import { WorkerHandle } from '../worker-handle.ts';
import { singleQueue, type Scenario } from './scenario.ts';

const perSecond = 100;

export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export const latency: Scenario = {
  name: 'latency',
  headline: { metric: 'p99Ms', unit: 'ms (p99)', higherIsBetter: false },
  rows: ['p50', 'p95', 'p99', 'max'].map((p) => ({ metric: `${p}Ms`, unit: `ms ${p}` })),
  server: 'shared',
  appliesTo: () => true,
  async run({ adapter, url, tuning, contestant, scale }) {
    const count = scale.latency;
    await adapter.install(url, singleQueue, tuning);
    const worker = new WorkerHandle();
    try {
      await worker.loaded();
      await worker.start(contestant, url, singleQueue, tuning, true);
      const publisher = await adapter.publisher(url, singleQueue, 2, tuning);
      await new Promise((resolve) => setTimeout(resolve, 1000)); // let the worker go idle
      const committed = new Array<number>(count);
      const startedAt = now();
      const pending: Promise<void>[] = [];
      try {
        for (let i = 0; i < count; i++) {
          const due = startedAt + (i * 1000) / perSecond;
          const wait = due - now();
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
          pending.push(publisher.one(makePayload(i)).then(() => void (committed[i] = now())));
        }
        await Promise.all(pending);
      } finally {
        await publisher.close();
      }
      await worker.waitHandled(count, 60_000);
      const report = await worker.stop();
      // A handler may start a hair before the publisher hears its commit: count that as 0.
      const delays = report.starts.map(([i, at]) => Math.max(0, at - committed[i]!)).sort((a, b) => a - b);
      const distinct = new Set(report.starts.map(([i]) => i));
      if (delays.length !== count || distinct.size !== count) {
        throw new Error(`handled ${delays.length} deliveries of ${distinct.size} distinct events, expected ${count} once each`);
      }
      return {
        metrics: {
          p50Ms: percentile(delays, 50),
          p95Ms: percentile(delays, 95),
          p99Ms: percentile(delays, 99),
          maxMs: delays[delays.length - 1]!,
        },
        workerPeakRssMiB: report.peakRssMiB,
      };
    } finally {
      worker.kill();
    }
  },
};
