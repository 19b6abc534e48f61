// Probe: where a worker process's memory goes.
//   imports  each module imported alone in a fresh process (node --import tsx, as bench workers
//            run): RSS and heap (after a GC) before and after, `rounds` times, min–max.
//   drain    per contestant, N events published beforehand, then a fresh process imports the
//            contestant, starts its worker and drains them: RSS and heap when loaded, after the
//            import, once started, the peaks while draining (sampled every 10 ms, like the bench),
//            and what is live halfway (after a GC, inside a handler; MEMORY_PROBE_SNAPSHOT=1 also
//            writes a heap snapshot there, into the working directory).
//   node --import tsx bench/src/probes/memory.ts [N] [tuning JSON] [contestants] [rounds]
//   e.g. ... memory.ts 20000 '{"crier.batchSize":500}' crier,raw 3   (a "name." prefix: one contestant's)
// MEMORY_PROBE_SKIP_IMPORTS=1 skips the import table; MEMORY_PROBE_ALLOCATIONS=1 (or =survivors)
// lists allocation sites (see sampleAllocations).
// Child modes (internal): `--import-cost <specifier>`, `--drain <contestant> <url> <N> <tuning JSON>`.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { getHeapSpaceStatistics, writeHeapSnapshot } from 'node:v8';
import { loadAdapter, type ContestantName, type Layout } from '../adapter.ts';
// Nothing else at the top: a child measures what it imports itself (the parent's helpers load lazily).

type Figures = Record<string, number>;
const MiB = 2 ** 20;
const singleQueue: Layout = { topic: 'bench.event', queues: ['bench'] };

/** RSS and heap in MiB, after a full GC (the child runs with --expose-gc). */
function usage(): { rss: number; heap: number } {
  globalThis.gc?.();
  const { rss, heapUsed } = process.memoryUsage();
  return { rss: rss / MiB, heap: heapUsed / MiB };
}

async function importCost(specifier: string): Promise<Figures> {
  const before = usage();
  await import(specifier);
  const after = usage();
  return { rss: after.rss - before.rss, heap: after.heap - before.heap };
}

async function drainIn(contestant: ContestantName, url: string, count: number, tuning: Record<string, unknown>): Promise<Figures> {
  const loaded = usage();
  let handled = 0;
  let peakRss = 0;
  let peakHeap = 0;
  const sample = () => {
    const { rss, heapUsed } = process.memoryUsage();
    peakRss = Math.max(peakRss, rss / MiB);
    peakHeap = Math.max(peakHeap, heapUsed / MiB);
  };
  const sampler = setInterval(sample, 10);
  const adapter = await loadAdapter(contestant);
  const imported = usage();
  let finished!: () => void;
  const allHandled = new Promise<void>((resolve) => (finished = resolve));
  let middle = { rss: 0, heap: 0 };
  const worker = await adapter.worker(url, singleQueue, () => {
    if (++handled === count) finished();
    if (handled === count >> 1) {
      // Halfway: what is live (after a full GC) while a batch is in flight.
      middle = usage();
      if (process.env.MEMORY_PROBE_SNAPSHOT) console.log(`heap snapshot: ${writeHeapSnapshot(undefined)}`);
    }
  }, tuning);
  const started = usage();
  const allocations = process.env.MEMORY_PROBE_ALLOCATIONS ? await sampleAllocations() : undefined;
  await allHandled;
  if (allocations) console.log(await allocations(count));
  sample();
  const newSpace = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_size / MiB;
  await worker.stop();
  clearInterval(sampler);
  return {
    'loaded rss': loaded.rss,
    'imported rss': imported.rss,
    'started rss': started.rss,
    'peak rss': peakRss,
    'live rss': middle.rss,
    'imported heap': imported.heap,
    'peak heap': peakHeap,
    'live heap': middle.heap,
    'new space': newSpace,
  };
}

/**
 * Starts V8's sampling heap profiler, counting objects that die young too (what a drain
 * allocates, not what it keeps); the function returned stops it and lists the top allocating
 * functions (self, KiB per delivery). MEMORY_PROBE_ALLOCATIONS=1 turns it on in drain children.
 */
async function sampleAllocations(): Promise<(count: number) => Promise<string>> {
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.startSampling', {
    samplingInterval: 1024,
    includeObjectsCollectedByMajorGC: true,
    // MEMORY_PROBE_ALLOCATIONS=survivors leaves out what died in a young-generation GC: what
    // survived one (held across it, or kept by dead old objects until the next full GC).
    includeObjectsCollectedByMinorGC: process.env.MEMORY_PROBE_ALLOCATIONS !== 'survivors',
  } as object);
  return async (count) => {
    // A young-generation GC first: what is still in the new space is counted as live otherwise
    // (up to a semi-space of garbage, a large share of a short drain's 'survivors').
    (globalThis.gc as ((options: { type: 'minor' }) => void) | undefined)?.({ type: 'minor' });
    interface Node { callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number }; selfSize: number; children: Node[] }
    const { profile } = (await session.post('HeapProfiler.stopSampling')) as unknown as { profile: { head: Node } };
    session.disconnect();
    const bySite = new Map<string, number>();
    let total = 0;
    const walk = (node: Node) => {
      const { functionName, url, lineNumber, columnNumber } = node.callFrame;
      const site = `${functionName || '(anonymous)'} ${url.replace(/^.*\/(node_modules|src)\//, '$1/')}:${lineNumber + 1}:${columnNumber + 1}`;
      bySite.set(site, (bySite.get(site) ?? 0) + node.selfSize);
      total += node.selfSize;
      node.children.forEach(walk);
    };
    walk(profile.head);
    const top = [...bySite].sort((a, b) => b[1] - a[1]).slice(0, 25);
    const perDelivery = (bytes: number) => (bytes / count / 1024).toFixed(2);
    return [`allocated per delivery: ${perDelivery(total)} KiB; top sites (KiB per delivery):`, ...top.map(([site, bytes]) => `  ${perDelivery(bytes).padStart(6)}  ${site}`)].join('\n');
  };
}

/** Runs this file in a fresh process in one of its child modes; resolves with what it reports. */
function inChild(args: string[]): Promise<Figures> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), args, {
      // MEMORY_PROBE_NODE_FLAGS: extra flags for the children (e.g. --max-semi-space-size=1).
      execArgv: ['--import', 'tsx', '--expose-gc', ...(process.env.MEMORY_PROBE_NODE_FLAGS?.split(' ').filter(Boolean) ?? [])],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    child.once('message', (figures: Figures) => resolve(figures));
    child.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`${args.join(' ')}: exit ${code}`))));
  });
}

const range = (values: number[]) => {
  const lo = Math.min(...values).toFixed(1);
  const hi = Math.max(...values).toFixed(1);
  return lo === hi ? lo : `${lo}–${hi}`;
};

function table(title: string, rows: Map<string, Figures[]>): void {
  const columns = Object.keys([...rows.values()][0]![0]!);
  console.log(`\n${title}\n| | ${columns.join(' | ')} |\n| --- |${columns.map(() => ' ---: |').join('')}`);
  for (const [name, runs] of rows) console.log(`| ${name} | ${columns.map((c) => range(runs.map((r) => r[c]!))).join(' | ')} |`);
}

async function main(): Promise<void> {
  const { createDatabase, dropDatabase, sharedServerUrl } = await import('../database.ts');
  const { publishBatches } = await import('../scenarios/scenario.ts');
  const count = Number(process.argv[2] ?? 20_000);
  const tuning = JSON.parse(process.argv[3] ?? '{}') as Record<string, unknown>;
  const contestants = (process.argv[4] ?? 'crier,raw').split(',') as ContestantName[];
  const rounds = Number(process.argv[5] ?? 3);

  if (!process.env.MEMORY_PROBE_SKIP_IMPORTS) {
    const crier = fileURLToPath(new URL('../../../src/index.ts', import.meta.url));
    const modules = new Map([
      ['postgres', 'postgres'],
      ['zod', 'zod'],
      ['drizzle-orm', 'drizzle-orm'],
      ['drizzle-orm/postgres-js', 'drizzle-orm/postgres-js'],
      ['crier (src/index.ts)', crier],
    ]);
    const imports = new Map<string, Figures[]>([...modules.keys()].map((name) => [name, []]));
    for (let round = 0; round < rounds; round++) {
      for (const [name, specifier] of modules) imports.get(name)!.push(await inChild(['--import-cost', specifier]));
    }
    table('Import cost, MiB (RSS and heap growth, after a GC)', imports);
  }

  const drains = new Map<string, Figures[]>(contestants.map((c) => [c, []]));
  for (let round = 0; round < rounds; round++) {
    for (const contestant of contestants) {
      const adapter = await loadAdapter(contestant);
      const url = await createDatabase(sharedServerUrl, `probe_memory_${contestant}`);
      try {
        const contestantTuning = Object.fromEntries(
          Object.entries(tuning).filter(([key]) => !key.includes('.') || key.startsWith(`${contestant}.`)).map(([k, v]) => [k.replace(/^[^.]+\./, ''), v]),
        );
        await adapter.install(url, singleQueue, contestantTuning);
        const publisher = await adapter.publisher(url, singleQueue, 8, contestantTuning);
        await publishBatches(publisher, count, 100, 8).finally(() => publisher.close());
        drains.get(contestant)!.push(await inChild(['--drain', contestant, url, String(count), JSON.stringify(contestantTuning)]));
      } finally {
        await dropDatabase(url);
      }
    }
  }
  table(`Worker process draining ${count} events, MiB (tuning ${JSON.stringify(tuning)})`, drains);
}

const [mode, ...args] = process.argv.slice(2);
if (mode === '--import-cost') {
  process.send!(await importCost(args[0]!));
  process.disconnect();
} else if (mode === '--drain') {
  process.send!(await drainIn(args[0] as ContestantName, args[1]!, Number(args[2]), JSON.parse(args[3]!)));
  process.disconnect();
} else {
  await main();
}
