// What a scenario is: a measurement of one contestant in one fresh database, run inside a cell.
import type { Adapter, ContestantName, Layout, Publisher, Tuning } from '../adapter.ts';
import { now } from '../clock.ts';
import { makePayload } from '../payload.ts';

/** Event counts; --quick shrinks them, --scale multiplies them. */
export interface Scale {
  single: number;
  batch: number;
  drain: number;
  latency: number;
  fanOut: number;
  history: number;
  /** many-subscriptions: events published at mixed rates, then again as a burst. */
  manySubscriptions: number;
  /** many-subscriptions: seconds of the idle window whose commits are counted. */
  idleSeconds: number;
}

export const fullScale: Scale = {
  single: 20_000, batch: 100_000, drain: 100_000, latency: 500, fanOut: 5_000, history: 10_000_000, manySubscriptions: 10_000, idleSeconds: 30,
};
export const quickScale: Scale = {
  single: 1_000, batch: 5_000, drain: 5_000, latency: 100, fanOut: 300, history: 20_000, manySubscriptions: 1_000, idleSeconds: 10,
};

export interface ScenarioContext {
  contestant: ContestantName;
  adapter: Adapter;
  /** The fresh database of this cell. */
  url: string;
  /** The server's own database (BENCH_DATABASE_URL): for reading statistics without adding to the cell's. */
  serverUrl: string;
  scale: Scale;
  tuning: Tuning;
  log(message: string): void;
}

export interface CellResult {
  /** Figures by name; the scenario's headline is one of them. */
  metrics: Record<string, number>;
  workerPeakRssMiB?: number;
  notes?: string[];
}

export interface Scenario {
  name: string;
  /** The figure tables and the chart show. */
  headline: { metric: string; unit: string; higherIsBetter: boolean };
  /** The figures the results table shows, one row each (default: the headline). */
  rows?: { metric: string; unit: string }[];
  /** 'embedded': needs a Postgres with default settings (autovacuum on) that the bench starts. */
  server: 'shared' | 'embedded';
  appliesTo(adapter: Adapter): boolean;
  run(context: ScenarioContext): Promise<CellResult>;
}

export const singleQueue: Layout = { topic: 'bench.event', queues: ['bench'] };
export const threeQueues: Layout = { topic: 'bench.event', queues: ['bench_a', 'bench_b', 'bench_c'] };

/** Calls `task(i)` for i in [from, from + count) with `inFlight` calls at a time. */
export async function inFlight(count: number, parallel: number, task: (i: number) => Promise<void>, from = 0): Promise<void> {
  let next = from;
  const end = from + count;
  const lane = async () => {
    while (next < end) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, lane));
}

/** Publishes `count` events in transactions of `perTx`, `parallel` transactions in flight. */
export async function publishBatches(publisher: Publisher, count: number, perTx: number, parallel: number, from = 0): Promise<void> {
  const batches = Math.ceil(count / perTx);
  await inFlight(batches, parallel, async (b) => {
    const first = from + b * perTx;
    const size = Math.min(perTx, from + count - first);
    await publisher.many(Array.from({ length: size }, (_, k) => makePayload(first + k)));
  });
}

export async function waitDrained(adapter: Adapter, url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = await adapter.remaining(url);
    if (left === 0) return;
    if (Date.now() > deadline) throw new Error(`${left} deliveries still not completed after ${timeoutMs}ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export function rate(events: number, startedAt: number): number {
  return events / ((now() - startedAt) / 1000);
}
