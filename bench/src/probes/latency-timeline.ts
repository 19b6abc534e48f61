// Probe: where the slowest events of the latency scenario lose their time. A crier worker (default
// settings) and a publisher in one process, N events one per transaction at 100/s; every statement
// the worker's protocol sends and every NOTIFY it receives is logged. Prints the percentiles, the
// round trips per event, and for the slowest events the timeline from their commit to their handler:
// a first claim that is slow (a fresh pool connection: plans and plpgsql functions are compiled once
// per backend), or no NOTIFY at all (the publish inserted before the worker parked and committed
// after its re-check: it waits for the next event's wake-up, or the poll). Garbage collections
// (PerformanceObserver 'gc') are in the timelines too, and counted against the slowest 1%.
//   node --import tsx bench/src/probes/latency-timeline.ts [N] [slowest shown]
import { PerformanceObserver } from 'node:perf_hooks';
import postgres from 'postgres';
import { createCrier, silentLogger } from '../../../src/index.ts';
import { Protocol } from '../../../src/worker/protocol.ts';
import { ClaimScheduler } from '../../../src/worker/claim-scheduler.ts';
import { now } from '../clock.ts';
import { createDatabase, dropDatabase, sharedServerUrl } from '../database.ts';
import { makePayload } from '../payload.ts';

const count = Number(process.argv[2] ?? 500);
const shown = Number(process.argv[3] ?? 6);
type Entry = { at: number; what: string };
const log: Entry[] = [];
const protocol = Protocol.prototype as any;
const run = protocol.run;
protocol.run = function (this: Protocol, name: string, ...rest: unknown[]) {
  const at = now();
  const sent = run.call(this, name, ...rest);
  sent.then(() => log.push({ at, what: `${name} (${(now() - at).toFixed(2)} ms)` }), () => {});
  return sent;
};
const notified = ClaimScheduler.prototype.notified;
ClaimScheduler.prototype.notified = function (this: ClaimScheduler) {
  log.push({ at: now(), what: 'NOTIFY' });
  return notified.call(this);
};

const gcKinds: Record<number, string> = { 1: 'young', 2: 'full', 4: 'incremental', 8: 'weak callbacks' };
const gcs: { at: number; ms: number }[] = [];
const gcObserver = new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const at = performance.timeOrigin + entry.startTime;
    gcs.push({ at, ms: entry.duration });
    log.push({ at, what: `GC ${gcKinds[(entry as unknown as { detail: { kind: number } }).detail.kind] ?? '?'} (${entry.duration.toFixed(2)} ms)` });
  }
});
gcObserver.observe({ entryTypes: ['gc'] });

const crier = createCrier();
const url = await createDatabase(sharedServerUrl, 'probe_latency');
try {
  await crier.migrate(url);
  const started = new Map<number, number>();
  const worker = crier.worker({
    connection: url,
    logger: silentLogger,
    handleSignals: false,
    subscriptions: [{ name: 'latency', topics: ['latency.x'], handler: (event) => void started.set((event.payload as { i: number }).i, now()) }],
  });
  await worker.start();
  const sql = postgres(url, { max: 2, onnotice: () => {} });
  await new Promise((resolve) => setTimeout(resolve, 1000)); // idle, as the scenario does
  const committed: number[] = [];
  const t0 = now();
  const pending: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    const wait = t0 + i * 10 - now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    pending.push(crier.publish(sql, 'latency.x', makePayload(i)).then(() => void (committed[i] = now())));
  }
  await Promise.all(pending);
  while (started.size < count) await new Promise((resolve) => setTimeout(resolve, 20));
  await worker.stop();
  await sql.end();

  const delays = [...started].map(([i, at]) => ({ i, ms: Math.max(0, at - committed[i]!) })).sort((a, b) => a.ms - b.ms);
  const pct = (p: number) => delays[Math.min(count - 1, Math.ceil((p / 100) * count) - 1)]!.ms.toFixed(2);
  const calls = new Map<string, number>();
  for (const { what } of log) {
    const name = what.split(' ')[0]!;
    if (name === 'GC') continue;
    calls.set(name, (calls.get(name) ?? 0) + 1);
  }
  console.log(`${count} events: p50 ${pct(50)} p95 ${pct(95)} p99 ${pct(99)} max ${delays.at(-1)!.ms.toFixed(2)} ms`);
  console.log(`calls: ${[...calls].map(([name, n]) => `${name} ${n} (${(n / count).toFixed(2)}/event)`).join(', ')}`);
  log.sort((a, b) => a.at - b.at);
  // Events nothing woke for: the claim that took them started only after the next event committed.
  const claims = log.filter((e) => e.what.startsWith('claim')).map((e) => e.at);
  let waitedForNext = 0;
  for (let i = 0; i + 1 < count; i++) {
    const pickedUp = claims.findLast((at) => at <= started.get(i)!);
    if (pickedUp !== undefined && pickedUp > committed[i + 1]!) waitedForNext++;
  }
  console.log(`events that waited for the next event's wake-up: ${waitedForNext}`);
  // GC pauses (the whole process stops) between an event's commit and its handler: their share of its delay.
  const slowest = delays.slice(-Math.max(1, Math.ceil(count / 100)));
  const paused = (from: number, to: number) => gcs.reduce((sum, gc) => sum + Math.max(0, Math.min(to, gc.at + gc.ms) - Math.max(from, gc.at)), 0);
  const gcMs = slowest.map(({ i, ms }) => paused(committed[i]!, committed[i]! + ms));
  console.log(
    `slowest 1% (${slowest.length}): GC pauses inside their delays ${gcMs.map((ms) => ms.toFixed(2)).join(', ')} ms;` +
      ` GCs ${gcs.length}, longest ${Math.max(0, ...gcs.map((g) => g.ms)).toFixed(2)} ms`,
  );
  for (const { i, ms } of delays.slice(-shown).reverse()) {
    const from = committed[i]!;
    console.log(`event ${i}: ${ms.toFixed(2)} ms (statements by start time, ms from its commit)`);
    for (const { at, what } of log) if (at >= from - 3 && at <= from + ms) console.log(`  ${(at - from).toFixed(2).padStart(8)}  ${what}`);
  }
} finally {
  gcObserver.disconnect();
  await dropDatabase(url);
}
