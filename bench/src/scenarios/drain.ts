// drain: N events published beforehand (100 per transaction), then a worker with a no-op handler
// starts; the clock runs from its start until every completion is committed.
// drain-failures: the same, with crier's subscription on history 'failures' (a delivery that
// succeeds at its first attempt is deleted at its ack, as raw's outbox deletes, instead of kept as
// done), beside the two contestants its targets name (graphile-worker, raw), which have no such choice.
import postgres from 'postgres';
import { now } from '../clock.ts';
import { WorkerHandle } from '../worker-handle.ts';
import { publishBatches, rate, singleQueue, waitDrained, type Scenario, type ScenarioContext } from './scenario.ts';

export const drain: Scenario = {
  name: 'drain',
  headline: { metric: 'eventsPerSecond', unit: 'events/s', higherIsBetter: true },
  server: 'shared',
  appliesTo: () => true,
  run: (context) => runDrain(context),
};

export const drainFailures: Scenario = {
  name: 'drain-failures',
  headline: { metric: 'eventsPerSecond', unit: 'events/s', higherIsBetter: true },
  server: 'shared',
  appliesTo: (adapter) => ['crier', 'graphile', 'raw'].includes(adapter.name),
  run: (context) => runDrain(context.contestant === 'crier' ? { ...context, tuning: { ...context.tuning, history: 'failures' } } : context),
};

async function runDrain({ adapter, url, tuning, contestant, scale, log }: ScenarioContext) {
  const count = scale.drain;
  await adapter.install(url, singleQueue, tuning);
  const publisher = await adapter.publisher(url, singleQueue, 8, tuning);
  try {
    await publishBatches(publisher, count, 100, 8);
  } finally {
    await publisher.close();
  }
  log(`${count} events published; draining`);
  // Transactions committed per event while draining: round trips the worker spends per delivery.
  const stats = postgres(url, { max: 1, onnotice: () => {} });
  const commits = async () =>
    Number((await stats`SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()`)[0]!.xact_commit);
  const worker = new WorkerHandle();
  try {
    await stats`SELECT pg_stat_clear_snapshot()`;
    const commitsBefore = await commits();
    await worker.loaded();
    const startedAt = now();
    await worker.start(contestant, url, singleQueue, tuning);
    await worker.waitHandled(count, 600_000);
    await waitDrained(adapter, url, 120_000);
    const eventsPerSecond = rate(count, startedAt);
    const report = await worker.stop();
    if (report.handled !== count) throw new Error(`handled ${report.handled}, expected ${count}`);
    if (contestant === 'crier' && tuning.history === 'failures') {
      // A no-op handler never fails: every delivery must have been deleted at its ack.
      const [left] = await stats`SELECT count(*)::int AS n FROM crier.deliveries`;
      if (left!.n !== 0) throw new Error(`history 'failures' kept ${left!.n} delivery rows of first-attempt successes`);
    }
    await new Promise((resolve) => setTimeout(resolve, 1200)); // backends report their counts within a second
    await stats`SELECT pg_stat_clear_snapshot()`;
    const transactionsPerEvent = ((await commits()) - commitsBefore) / count;
    return { metrics: { eventsPerSecond, transactionsPerEvent }, workerPeakRssMiB: report.peakRssMiB };
  } finally {
    worker.kill();
    await stats.end();
  }
}
