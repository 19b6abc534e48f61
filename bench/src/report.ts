// Turns a results file into the Markdown tables and the SVG chart that docs/benchmarks.md shows.
import type { ContestantName } from './adapter.ts';
import { summarize, type Summary } from './stats.ts';

export interface CellRecord {
  run: number;
  contestant: ContestantName;
  scenario: string;
  server: 'shared' | 'embedded';
  metrics: Record<string, number>;
  workerPeakRssMiB?: number;
  error?: string;
}

export interface ResultsFile {
  startedAt: string;
  finishedAt: string;
  machine: { cpus: number; node: string; sharedServer: string; embeddedServer?: string };
  options: { quick: boolean; runs: number; scenarios: string[]; contestants: string[] };
  scale: Record<string, number>;
  tuning: Record<string, unknown>;
  cells: CellRecord[];
}

export interface ScenarioInfo {
  name: string;
  headline: { metric: string; unit: string; higherIsBetter: boolean };
  rows?: { metric: string; unit: string }[];
}

const fmt = (n: number) =>
  Math.abs(n) >= 100 ? Math.round(n).toLocaleString('en-US') : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2);
const range = (s: Summary) => `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`;

/** Median/min/max of one metric per contestant in one scenario (successful cells only). */
export function metricSummaries(file: ResultsFile, scenario: string, metric: string): Map<ContestantName, Summary> {
  const byContestant = new Map<ContestantName, number[]>();
  for (const cell of file.cells) {
    if (cell.scenario !== scenario || cell.error || cell.metrics[metric] === undefined) continue;
    byContestant.set(cell.contestant, [...(byContestant.get(cell.contestant) ?? []), cell.metrics[metric]!]);
  }
  return new Map([...byContestant].map(([c, values]) => [c, summarize(values)]));
}

export function markdownReport(file: ResultsFile, scenarios: readonly ScenarioInfo[]): string {
  const lines: string[] = [];
  const contestants = file.options.contestants as ContestantName[];
  lines.push(
    `Run of ${file.startedAt} (${file.options.quick ? 'quick' : 'full'} mode, events ${Object.entries(file.scale).map(([k, v]) => `${k} ${v}`).join(', ')}; ` +
      `${file.options.runs} runs per cell, median (min–max)); ` +
      `${file.machine.cpus} CPUs, Node ${file.machine.node}; shared server: ${file.machine.sharedServer}` +
      (file.machine.embeddedServer ? `; growth on embedded PostgreSQL ${file.machine.embeddedServer} (default settings)` : '') +
      '.',
    '',
    `Settings: ${Object.entries(file.tuning)
      .map(([c, t]) => `${c} ${Object.keys(t as object).length ? JSON.stringify(t) : '(defaults)'}`)
      .join('; ')}.`,
    '',
  );
  const main = scenarios.filter((s) => s.name !== 'growth' && file.options.scenarios.includes(s.name));
  if (main.length > 0) {
    lines.push(`| scenario | unit | ${contestants.join(' | ')} |`, `| --- | --- | ${contestants.map(() => '---:').join(' | ')} |`);
    for (const scenario of main) {
      for (const { metric, unit } of scenario.rows ?? [scenario.headline]) {
        const summaries = metricSummaries(file, scenario.name, metric);
        const cells = contestants.map((c) => {
          const s = summaries.get(c);
          const failed = file.cells.some((x) => x.scenario === scenario.name && x.contestant === c && x.error);
          return s ? range(s) : failed ? 'failed' : 'n/a';
        });
        lines.push(`| ${scenario.name} | ${unit} | ${cells.join(' | ')} |`);
      }
    }
    lines.push('', '**Worker peak RSS (MiB)**, the worker process of each cell:', '');
    lines.push(`| scenario | ${contestants.join(' | ')} |`, `| --- | ${contestants.map(() => '---:').join(' | ')} |`);
    for (const scenario of main) {
      const cells = contestants.map((c) => {
        const values = file.cells
          .filter((x) => x.scenario === scenario.name && x.contestant === c && x.workerPeakRssMiB !== undefined)
          .map((x) => x.workerPeakRssMiB!);
        return values.length ? range(summarize(values)) : 'n/a';
      });
      lines.push(`| ${scenario.name} | ${cells.join(' | ')} |`);
    }
  }
  if (file.options.scenarios.includes('growth')) {
    const metrics = [...new Set(file.cells.filter((c) => c.scenario === 'growth' && !c.error).flatMap((c) => Object.keys(c.metrics)))];
    if (metrics.length > 0) {
      lines.push('', `**growth** (crier, embedded server, autovacuum on):`, '', '| figure | crier |', '| --- | ---: |');
      for (const metric of metrics) {
        const s = metricSummaries(file, 'growth', metric).get('crier');
        if (s) lines.push(`| ${metric} | ${range(s)} |`);
      }
    }
  }
  const errors = file.cells.filter((c) => c.error);
  if (errors.length > 0) {
    lines.push('', '**Failed cells:**', '');
    for (const e of errors) lines.push(`- run ${e.run} ${e.contestant}/${e.scenario}: ${e.error!.split('\n')[0]}`);
  }
  return lines.join('\n') + '\n';
}

const colors: Record<ContestantName, string> = {
  crier: '#d9480f',
  pgboss: '#1971c2',
  graphile: '#2f9e44',
  raw: '#495057',
  'raw-nonotify': '#adb5bd',
};

/** One group of bars per throughput scenario, each bar the median relative to raw (= 1.0); '' if none ran. */
export function svgChart(file: ResultsFile, scenarios: readonly ScenarioInfo[]): string {
  const contestants = file.options.contestants as ContestantName[];
  const groups = scenarios
    .filter((s) => s.headline.higherIsBetter && s.name !== 'growth' && file.options.scenarios.includes(s.name))
    .map((s) => ({ name: s.name, summaries: metricSummaries(file, s.name, s.headline.metric) }));
  if (groups.length === 0) return '';
  const barW = 16;
  const gap = 28;
  const groupW = contestants.length * barW + gap;
  const left = 50;
  const top = 30;
  const plotH = 200;
  const width = left + groups.length * groupW + 150;
  const height = top + plotH + 50;
  const ratios = groups.flatMap((g) => {
    const base = g.summaries.get('raw')?.median;
    return contestants.map((c) => (base && g.summaries.get(c) ? g.summaries.get(c)!.median / base : 0));
  });
  const maxRatio = Math.max(1.2, ...ratios);
  const y = (ratio: number) => Math.round((top + plotH - (ratio / maxRatio) * plotH) * 10) / 10;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${left}" y="16" font-size="13" font-weight="bold">Throughput relative to the raw SQL baseline (median of ${file.options.runs} runs, higher is better)</text>`,
  );
  for (let r = 0; r <= maxRatio + 1e-9; r += 0.25) {
    out.push(`<line x1="${left}" x2="${left + groups.length * groupW}" y1="${y(r)}" y2="${y(r)}" stroke="${r === 1 ? '#868e96' : '#e9ecef'}"/>`);
    if (Math.abs(r * 2 - Math.round(r * 2)) < 1e-9) out.push(`<text x="${left - 6}" y="${y(r) + 4}" text-anchor="end">${r.toFixed(1)}×</text>`);
  }
  groups.forEach((g, gi) => {
    const x0 = left + gi * groupW + gap / 2;
    const base = g.summaries.get('raw')?.median;
    contestants.forEach((c, ci) => {
      const s = g.summaries.get(c);
      if (!s || !base) return;
      const ratio = s.median / base;
      const x = x0 + ci * barW;
      out.push(`<rect x="${x}" y="${y(ratio)}" width="${barW - 2}" height="${y(0) - y(ratio)}" fill="${colors[c]}"><title>${c} ${g.name}: ${fmt(s.median)}/s (${ratio.toFixed(2)}× raw)</title></rect>`);
    });
    out.push(`<text x="${x0 + (contestants.length * barW) / 2}" y="${top + plotH + 16}" text-anchor="middle">${g.name}</text>`);
  });
  contestants.forEach((c, i) => {
    const lx = left + groups.length * groupW + 16;
    out.push(`<rect x="${lx}" y="${top + i * 18}" width="12" height="12" fill="${colors[c]}"/>`, `<text x="${lx + 18}" y="${top + i * 18 + 10}">${c}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
