// `npm run bench`: every contestant through every scenario, each cell in its own process and fresh
// database, contestants alternating from run to run; writes bench/results/<date>.{json,md,svg}.
//   --quick            small counts (a smoke run of the harness, not figures to quote)
//   --scenarios a,b    only these scenarios (publish-single, publish-batch, drain, drain-failures, latency, fan-out, growth)
//   --contestants a,b  only these contestants (crier, pgboss, graphile, raw, raw-nonotify)
//   --runs N           runs per cell (default 2; the median is reported with min and max)
//   --scale F          multiply the event counts (e.g. 0.2 for a shorter full run)
//   --history N        events of history in the growth scenario (default 1,000,000; quick 20,000)
//   --tuning c.k=v,... override a contestant's setting, e.g. crier.concurrency=100 (recorded in the results)
//   --out NAME         results file name (default: the date and time)
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { contestants as allContestants, loadAdapter, type ContestantName, type Tuning } from './adapter.ts';
import { sharedServerUrl, startEmbedded, type EmbeddedServer } from './database.ts';
import { markdownReport, svgChart, type CellRecord, type ResultsFile } from './report.ts';
import { runCell } from './run-cell.ts';
import { scenarioByName, scenarios as allScenarios } from './scenarios/index.ts';
import { fullScale, quickScale, type Scale } from './scenarios/scenario.ts';
import { bestTuning } from './tuning.ts';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    scenarios: { type: 'string' },
    contestants: { type: 'string' },
    runs: { type: 'string', default: '2' },
    scale: { type: 'string', default: '1' },
    out: { type: 'string' },
    history: { type: 'string' },
    tuning: { type: 'string' },
  },
});

const runs = Number(args.runs);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer, got ${args.runs}`);
const factor = Number(args.scale);
if (!(factor > 0)) throw new Error(`--scale must be a positive number, got ${args.scale}`);
const scenarioNames = args.scenarios ? args.scenarios.split(',') : allScenarios.map((s) => s.name);
const scenarios = scenarioNames.map(scenarioByName);
const contestants = (args.contestants ? args.contestants.split(',') : [...allContestants]) as ContestantName[];
for (const c of contestants) if (!allContestants.includes(c)) throw new Error(`unknown contestant "${c}"`);
const base = args.quick ? quickScale : fullScale;
const scale = Object.fromEntries(Object.entries(base).map(([k, v]) => [k, Math.max(10, Math.round(v * factor))])) as unknown as Scale;
if (args.history) scale.history = Number(args.history);
const overrides: Partial<Record<ContestantName, Tuning>> = {};
for (const item of args.tuning ? args.tuning.split(',') : []) {
  const match = /^([a-z-]+)\.(\w+)=(.+)$/.exec(item);
  if (!match) throw new Error(`--tuning expects contestant.key=value, got "${item}"`);
  const value = match[3]!;
  const parsed = value === 'true' ? true : value === 'false' ? false : Number.isNaN(Number(value)) ? value : Number(value);
  overrides[match[1] as ContestantName] = { ...overrides[match[1] as ContestantName], [match[2]!]: parsed };
}
const tuningOf = (c: ContestantName): Tuning => ({ ...bestTuning(c), ...overrides[c] });
const adapters = new Map(await Promise.all(contestants.map(async (c) => [c, await loadAdapter(c)] as const)));

const sharedVersion = await (async () => {
  const sql = postgres(sharedServerUrl, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql`SELECT current_setting('server_version') AS v, current_setting('autovacuum') AS av`;
    return `PostgreSQL ${row!.v} (autovacuum ${row!.av})`;
  } finally {
    await sql.end();
  }
})();

let embedded: EmbeddedServer | undefined;
const stopEmbedded = async () => {
  await embedded?.stop();
  embedded = undefined;
};
process.once('SIGINT', () => void stopEmbedded().then(() => process.exit(130)));
process.once('SIGTERM', () => void stopEmbedded().then(() => process.exit(143)));

const startedAt = new Date();
const cells: CellRecord[] = [];
const plan = scenarios.flatMap((s) => contestants.filter((c) => s.appliesTo(adapters.get(c)!)).map(() => s)).length * runs;
let done = 0;
console.log(`bench: ${plan} cells (${runs} runs), ${args.quick ? 'quick' : 'full'} scale ${JSON.stringify(scale)}`);
try {
  if (scenarios.some((s) => s.server === 'embedded')) {
    embedded = await startEmbedded();
    console.log(`embedded PostgreSQL ${embedded.version} started for growth (default settings, autovacuum on)`);
  }
  for (let run = 1; run <= runs; run++) {
    for (const scenario of scenarios) {
      // Alternate the order from run to run so no contestant always goes first on a cold cache.
      const order = contestants.filter((c) => scenario.appliesTo(adapters.get(c)!));
      const rotated = order.map((_, i) => order[(i + run - 1) % order.length]!);
      for (const contestant of rotated) {
        done++;
        const server = scenario.server === 'embedded' ? embedded!.url : sharedServerUrl;
        const label = `[${done}/${plan}] run ${run} ${scenario.name} ${contestant}`;
        const t0 = Date.now();
        try {
          const result = await runCell({ contestant, scenario: scenario.name, serverUrl: server, scale, tuning: tuningOf(contestant) });
          cells.push({ run, contestant, scenario: scenario.name, server: scenario.server, ...result });
          const m = result.metrics[scenario.headline.metric]!;
          console.log(`${label}: ${m.toFixed(m < 100 ? 2 : 0)} ${scenario.headline.unit}` +
            `${result.workerPeakRssMiB ? `, worker RSS ${result.workerPeakRssMiB.toFixed(0)} MiB` : ''} (${((Date.now() - t0) / 1000).toFixed(1)}s)`);
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          cells.push({ run, contestant, scenario: scenario.name, server: scenario.server, metrics: {}, error: message });
          console.log(`${label}: FAILED ${message.split('\n')[0]}`);
        }
      }
    }
  }
} finally {
  const embeddedVersion = embedded?.version;
  await stopEmbedded();
  const file: ResultsFile = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: { cpus: cpus().length, node: process.version, sharedServer: sharedVersion, ...(embeddedVersion ? { embeddedServer: embeddedVersion } : {}) },
    options: { quick: args.quick!, runs, scenarios: scenarioNames, contestants },
    scale: scale as unknown as Record<string, number>,
    tuning: Object.fromEntries(contestants.map((c) => [c, tuningOf(c)])),
    cells,
  };
  const folder = new URL('../results/', import.meta.url);
  mkdirSync(folder, { recursive: true });
  const name = args.out ?? startedAt.toISOString().slice(0, 16).replace(/[:T]/g, '-') + (args.quick ? '-quick' : '');
  writeFileSync(new URL(`${name}.json`, folder), JSON.stringify(file, null, 2) + '\n');
  writeFileSync(new URL(`${name}.md`, folder), markdownReport(file, allScenarios));
  const chart = svgChart(file, allScenarios);
  if (chart) writeFileSync(new URL(`${name}.svg`, folder), chart);
  console.log(`\n${markdownReport(file, allScenarios)}\nwrote bench/results/${name}.{json,md${chart ? ',svg' : ''}}`);
}
