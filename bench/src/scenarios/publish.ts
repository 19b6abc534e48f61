// publish-single (one event per transaction, 8 calls in flight) and publish-batch (100 events per
// transaction, 8 in flight). A worker runs meanwhile in its own process, so a contestant that wakes
// workers on every publish pays for it here; afterwards every event must have been handled once.
import { now } from '../clock.ts';
import { makePayload } from '../payload.ts';
import { WorkerHandle } from '../worker-handle.ts';
import { inFlight, publishBatches, rate, singleQueue, type Scenario, type ScenarioContext } from './scenario.ts';

const parallel = 8;
const warmup = 200;

async function measure(context: ScenarioContext, count: number, perTx: number) {
  const { adapter, url, tuning, contestant } = context;
  await adapter.install(url, singleQueue, tuning);
  const worker = new WorkerHandle();
  try {
    await worker.loaded();
    await worker.start(contestant, url, singleQueue, tuning);
    const publisher = await adapter.publisher(url, singleQueue, parallel, tuning);
    let startedAt: number;
    try {
      await inFlight(warmup, parallel, (i) => publisher.one(makePayload(i)));
      startedAt = now();
      if (perTx === 1) await inFlight(count, parallel, (i) => publisher.one(makePayload(i)), warmup);
      else await publishBatches(publisher, count, perTx, parallel, warmup);
    } finally {
      await publisher.close();
    }
    const published = rate(count, startedAt);
    await worker.waitHandled(warmup + count, 600_000); // a slow consumer gets a figure, not a failure
    const report = await worker.stop();
    if (report.handled !== warmup + count) throw new Error(`handled ${report.handled}, expected ${warmup + count}`);
    return { metrics: { eventsPerSecond: published }, workerPeakRssMiB: report.peakRssMiB };
  } finally {
    worker.kill();
  }
}

export const publishSingle: Scenario = {
  name: 'publish-single',
  headline: { metric: 'eventsPerSecond', unit: 'events/s', higherIsBetter: true },
  server: 'shared',
  appliesTo: () => true,
  run: (context) => measure(context, context.scale.single, 1),
};

export const publishBatch: Scenario = {
  name: 'publish-batch',
  headline: { metric: 'eventsPerSecond', unit: 'events/s', higherIsBetter: true },
  server: 'shared',
  appliesTo: () => true,
  run: (context) => measure(context, context.scale.batch, 100),
};
