// `npm run bench:sweep`: the peers' settings that matter, tried side by side, so that the settings
// `npm run bench` gives them (adapters/*-settings.ts) are their best, with the figures to show it.
//   pg-boss: batchSize with burstWhenBatchFull, localConcurrency, notify (queue + useListenNotify)
//   graphile-worker: concurrency, localQueue size, completeJobBatchDelay and failJobBatchDelay
//   crier: concurrency per subscription (its default is 10)
// Options: --quick, --runs N (default 1), --scale F, --contestants a,b, --scenarios a,b.
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { ContestantName, Tuning } from './adapter.ts';
import { sharedServerUrl } from './database.ts';
import { runCell } from './run-cell.ts';
import { fullScale, quickScale, type Scale } from './scenarios/scenario.ts';
import { summarize } from './stats.ts';

// pg-boss's defaults (batchSize 1, no burst, 2 s poll) handle one job per poll: about 0.5 jobs/s
// per worker, so they are left out (a 2,000-event cell does not finish in minutes).
const variants: Record<string, { label: string; tuning: Tuning }[]> = {
  pgboss: [
    { label: 'batchSize 100, burst, notify', tuning: { batchSize: 100, burstWhenBatchFull: true, localConcurrency: 1, notify: true, pollingIntervalSeconds: 0.5 } },
    { label: 'batchSize 100, burst, notify, localConcurrency 2', tuning: { batchSize: 100, burstWhenBatchFull: true, localConcurrency: 2, notify: true, pollingIntervalSeconds: 0.5 } },
    { label: 'batchSize 500, burst, notify, localConcurrency 2', tuning: { batchSize: 500, burstWhenBatchFull: true, localConcurrency: 2, notify: true, pollingIntervalSeconds: 0.5 } },
    { label: 'batchSize 100, burst, no notify, localConcurrency 2', tuning: { batchSize: 100, burstWhenBatchFull: true, localConcurrency: 2, notify: false, pollingIntervalSeconds: 0.5 } },
  ],
  graphile: [
    { label: 'defaults (concurrency 1, no localQueue)', tuning: { concurrency: 1, localQueueSize: -1, completeJobBatchDelay: -1, failJobBatchDelay: -1 } },
    { label: 'concurrency 10, no localQueue', tuning: { concurrency: 10, localQueueSize: -1, completeJobBatchDelay: -1, failJobBatchDelay: -1 } },
    { label: 'concurrency 10, localQueue 100, completeJobBatchDelay 0', tuning: { concurrency: 10, localQueueSize: 100, completeJobBatchDelay: 0 } },
    { label: 'concurrency 10, localQueue 500, completeJobBatchDelay 0', tuning: { concurrency: 10, localQueueSize: 500, completeJobBatchDelay: 0 } },
    { label: 'concurrency 20, localQueue 500, completeJobBatchDelay 0', tuning: { concurrency: 20, localQueueSize: 500, completeJobBatchDelay: 0 } },
    // Its performance page's configuration (website/docs/performance.md, "With batching").
    { label: 'concurrency 24, localQueue 500, complete/failJobBatchDelay 0', tuning: { concurrency: 24, localQueueSize: 500, completeJobBatchDelay: 0, failJobBatchDelay: 0 } },
  ],
  crier: [
    { label: 'defaults (concurrency 10)', tuning: {} },
    { label: 'concurrency 100', tuning: { concurrency: 100 } },
    { label: 'concurrency 500', tuning: { concurrency: 500 } },
  ],
};

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string', default: '1' },
    scale: { type: 'string', default: '0.2' },
    contestants: { type: 'string', default: 'pgboss,graphile,crier' },
    scenarios: { type: 'string', default: 'publish-single,drain,latency' },
  },
});
const runs = Number(args.runs);
const factor = Number(args.scale);
const base = args.quick ? quickScale : fullScale;
const scale = Object.fromEntries(Object.entries(base).map(([k, v]) => [k, Math.max(10, Math.round(v * factor))])) as unknown as Scale;
const scenarios = args.scenarios!.split(',');
const contestants = args.contestants!.split(',') as ContestantName[];
const headline: Record<string, string> = { 'publish-single': 'eventsPerSecond', 'publish-batch': 'eventsPerSecond', drain: 'eventsPerSecond', latency: 'p99Ms', 'fan-out': 'eventsPerSecond' };

interface Row {
  contestant: ContestantName;
  label: string;
  tuning: Tuning;
  figures: Record<string, { median: number; min: number; max: number } | string>;
}
const rows: Row[] = [];
console.log(`sweep: ${contestants.join(', ')} over ${scenarios.join(', ')}, ${runs} run(s), scale ${JSON.stringify(scale)}`);
for (const contestant of contestants) {
  for (const variant of variants[contestant] ?? []) {
    const row: Row = { contestant, label: variant.label, tuning: variant.tuning, figures: {} };
    for (const scenario of scenarios) {
      const values: number[] = [];
      for (let run = 0; run < runs; run++) {
        try {
          const result = await runCell({ contestant, scenario, serverUrl: sharedServerUrl, scale, tuning: variant.tuning }, 10 * 60_000);
          values.push(result.metrics[headline[scenario]!]!);
        } catch (error) {
          row.figures[scenario] = `failed: ${(error as Error).message.split('\n')[0]}`;
        }
      }
      if (values.length > 0) row.figures[scenario] = summarize(values);
      const f = row.figures[scenario]!;
      console.log(`${contestant} | ${variant.label} | ${scenario}: ${typeof f === 'string' ? f : f.median.toFixed(f.median < 100 ? 2 : 0)}`);
    }
    rows.push(row);
  }
}

const fmt = (f: Row['figures'][string] | undefined) =>
  f === undefined ? 'n/a' : typeof f === 'string' ? f : f.median < 100 ? f.median.toFixed(1) : Math.round(f.median).toLocaleString('en-US');
const units: Record<string, string> = { 'publish-single': 'events/s', 'publish-batch': 'events/s', drain: 'events/s', latency: 'p99 ms', 'fan-out': 'events/s' };
const md = [
  `Sweep of ${new Date().toISOString()} (${runs} run(s) per cell, median; scale ${JSON.stringify(scale)}):`,
  '',
  `| contestant | settings | ${scenarios.map((s) => `${s} (${units[s]})`).join(' | ')} |`,
  `| --- | --- | ${scenarios.map(() => '---:').join(' | ')} |`,
  ...rows.map((r) => `| ${r.contestant} | ${r.label} | ${scenarios.map((s) => fmt(r.figures[s])).join(' | ')} |`),
].join('\n') + '\n';
const folder = new URL('../results/', import.meta.url);
mkdirSync(folder, { recursive: true });
const name = `sweep-${new Date().toISOString().slice(0, 16).replace(/[:T]/g, '-')}${args.quick ? '-quick' : ''}`;
writeFileSync(new URL(`${name}.json`, folder), JSON.stringify({ scale, runs, rows }, null, 2) + '\n');
writeFileSync(new URL(`${name}.md`, folder), md);
console.log(`\n${md}\nwrote bench/results/${name}.{json,md}`);
