// fan-out: three queues (crier: subscriptions) receive every event of one topic. Events are published
// one per transaction, 8 in flight, while the worker handles all three; the rate is events per second
// from the first publish until all 3 x N completions are committed.
import { now } from '../clock.ts';
import { makePayload } from '../payload.ts';
import { WorkerHandle } from '../worker-handle.ts';
import { inFlight, rate, threeQueues, waitDrained, type Scenario } from './scenario.ts';

export const fanOut: Scenario = {
  name: 'fan-out',
  headline: { metric: 'eventsPerSecond', unit: 'events/s (x3 deliveries)', higherIsBetter: true },
  server: 'shared',
  appliesTo: (adapter) => adapter.fanOut,
  async run({ adapter, url, tuning, contestant, scale }) {
    const count = scale.fanOut;
    await adapter.install(url, threeQueues, tuning);
    const worker = new WorkerHandle();
    try {
      await worker.loaded();
      await worker.start(contestant, url, threeQueues, tuning);
      const publisher = await adapter.publisher(url, threeQueues, 8, tuning);
      const startedAt = now();
      try {
        await inFlight(count, 8, (i) => publisher.one(makePayload(i)));
      } finally {
        await publisher.close();
      }
      await worker.waitHandled(3 * count, 300_000);
      await waitDrained(adapter, url, 120_000);
      const eventsPerSecond = rate(count, startedAt);
      const report = await worker.stop();
      if (report.handled !== 3 * count) throw new Error(`handled ${report.handled}, expected ${3 * count}`);
      return { metrics: { eventsPerSecond }, workerPeakRssMiB: report.peakRssMiB };
    } finally {
      worker.kill();
    }
  },
};
