// many-subscriptions: one worker process serving 25 queues (crier: subscriptions, each on a topic of
// its own), as an application with one consumer per handler class has. Three phases, one worker:
//   idle    the worker started with nothing to do: the connections it holds, and the transactions
//           it commits per second over `idleSeconds` (the server's xact_commit for the cell's
//           database, read from the server's own database; an 11 s wait first lets every backend
//           report its statistics, which an idle one does within 10 s);
//   mixed   `manySubscriptions` events published one per transaction at mixed rates (1 queue at
//           200/s, 2 at 75/s, 4 at 20/s, 8 at 5/s, 10 at 1/s: 480 events/s in all): ms from commit
//           to handler start, p50 and p99;
//   burst   as many events again, 100 per transaction (each batch to one queue, drawn with the
//           same weights), 8 in flight: events/s from the first publish until all are completed,
//           and the transactions committed per event meanwhile (the worker's round trips, and the
//           publisher's one per 100 events). A busy backend reports its commits at most once a
//           second and an idle one within 10 s, so a counter read right after a burst of a second
//           missed most of them (0.00 per event was seen): the counter is read `statsLagMs` after
//           the mixed phase and after the burst, less what the idle worker commits in the second wait.
// Connections are the worker's own backends, told apart by application_name (the worker process
// runs with PGAPPNAME set), sampled every 100 ms: the most seen in any phase.
import postgres from 'postgres';
import { now } from '../clock.ts';
import { makePayload } from '../payload.ts';
import { WorkerHandle } from '../worker-handle.ts';
import { percentile } from './latency.ts';
import { publishBatches, rate, waitDrained, type Scenario } from './scenario.ts';

const queues = 25;
/** Events per second of each queue, by queue index. */
const rates = [200, 75, 75, 20, 20, 20, 20, ...Array<number>(8).fill(5), ...Array<number>(10).fill(1)];
const layout = {
  topic: 'bench.many',
  queues: Array.from({ length: queues }, (_, i) => `bench_many_${String(i).padStart(2, '0')}`),
  topics: Array.from({ length: queues }, (_, i) => `bench.many.q${String(i).padStart(2, '0')}`),
};
const appName = 'bench_many_worker';
/** Long enough for every backend to have reported its commits to the server's statistics. */
const statsLagMs = 11_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The first `count` publications of the mixed-rate schedule: [ms from the start, queue], in time order. */
function schedule(count: number): [number, number][] {
  const perQueue = rates.map((r) => Math.ceil((count * r) / rates.reduce((a, b) => a + b, 0)) + 1);
  const all = rates.flatMap((r, q) => Array.from({ length: perQueue[q]! }, (_, k): [number, number] => [(k * 1000) / r, q]));
  return all.sort((a, b) => a[0] - b[0]).slice(0, count);
}

/** A queue drawn with the rates as weights, deterministically from `i`. */
function weightedQueue(i: number): number {
  const total = rates.reduce((a, b) => a + b, 0);
  let x = (i * 7919) % total;
  for (const [q, r] of rates.entries()) {
    if (x < r) return q;
    x -= r;
  }
  return 0;
}

export const manySubscriptions: Scenario = {
  name: 'many-subscriptions',
  headline: { metric: 'eventsPerSecond', unit: 'events/s (burst, 25 queues)', higherIsBetter: true },
  rows: [
    { metric: 'eventsPerSecond', unit: 'events/s (burst, 25 queues)' },
    { metric: 'p50Ms', unit: 'ms p50 (mixed rates)' },
    { metric: 'p99Ms', unit: 'ms p99 (mixed rates)' },
    { metric: 'connectionsIdle', unit: 'connections, idle' },
    { metric: 'connectionsPeak', unit: 'connections, most' },
    { metric: 'idleCommitsPerSecond', unit: 'commits/s, idle' },
    { metric: 'burstCommitsPerEvent', unit: 'commits per event (burst)' },
  ],
  server: 'shared',
  appliesTo: () => true,
  async run({ adapter, url, serverUrl, tuning, contestant, scale, log }) {
    const count = scale.manySubscriptions;
    await adapter.install(url, layout, tuning);
    const database = new URL(url).pathname.slice(1);
    const stats = postgres(serverUrl, { max: 1, onnotice: () => {} });
    const connections = async () =>
      (await stats`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = ${database} AND application_name = ${appName}`)[0]!.n as number;
    const commits = async () => Number((await stats`SELECT xact_commit FROM pg_stat_database WHERE datname = ${database}`)[0]!.xact_commit);
    let connectionsPeak = 0;
    const sampler = setInterval(() => void connections().then((n) => (connectionsPeak = Math.max(connectionsPeak, n)), () => {}), 100);
    const worker = new WorkerHandle({ appName });
    try {
      await worker.loaded();
      await worker.start(contestant, url, layout, tuning, true);

      await sleep(statsLagMs);
      const before = await commits();
      await new Promise((resolve) => setTimeout(resolve, scale.idleSeconds * 1000));
      const idleCommitsPerSecond = ((await commits()) - before) / scale.idleSeconds;
      const connectionsIdle = await connections();
      log(`idle: ${connectionsIdle} connections, ${idleCommitsPerSecond.toFixed(2)} commits/s; publishing ${count} events at mixed rates`);

      const publisher = await adapter.publisher(url, layout, 8, tuning);
      const committed = new Array<number>(count);
      let eventsPerSecond: number;
      let burstCommitsPerEvent: number;
      try {
        const startedAt = now();
        const pending: Promise<void>[] = [];
        for (const [i, [at, queue]] of schedule(count).entries()) {
          const wait = startedAt + at - now();
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
          pending.push(publisher.one(makePayload(i), queue).then(() => void (committed[i] = now())));
        }
        await Promise.all(pending);
        await worker.waitHandled(count, 120_000);

        log(`mixed rates handled; a burst of ${count} events`);
        await sleep(statsLagMs);
        const commitsBefore = await commits();
        const burstAt = now();
        // publishBatches sends every batch to queue 0; here each batch goes to a weighted queue.
        const weighted = { ...publisher, many: (payloads: object[]) => publisher.many(payloads, weightedQueue((payloads[0] as { i: number }).i)) };
        await publishBatches(weighted, count, 100, 8, count);
        await worker.waitHandled(2 * count, 300_000);
        await waitDrained(adapter, url, 120_000);
        eventsPerSecond = rate(count, burstAt);
        await sleep(statsLagMs);
        burstCommitsPerEvent = ((await commits()) - commitsBefore - (idleCommitsPerSecond * statsLagMs) / 1000) / count;
      } finally {
        await publisher.close();
      }
      const report = await worker.stop();
      if (report.handled !== 2 * count) throw new Error(`handled ${report.handled}, expected ${2 * count}`);
      const delays = report.starts.filter(([i]) => i < count).map(([i, at]) => Math.max(0, at - committed[i]!)).sort((a, b) => a - b);
      if (delays.length !== count) throw new Error(`${delays.length} handler starts recorded for ${count} events`);
      return {
        metrics: {
          eventsPerSecond,
          p50Ms: percentile(delays, 50),
          p99Ms: percentile(delays, 99),
          connectionsIdle,
          connectionsPeak,
          idleCommitsPerSecond,
          burstCommitsPerEvent,
        },
        workerPeakRssMiB: report.peakRssMiB,
      };
    } finally {
      clearInterval(sampler);
      worker.kill();
      await stats.end({ timeout: 1 });
    }
  },
};
