// The one small interface every contestant implements, so scenarios never know whose code runs.
// A contestant is driven through its own public API only (crier through ../../src/index.ts).

export type ContestantName = 'crier' | 'pgboss' | 'graphile' | 'raw' | 'raw-nonotify';
export const contestants: readonly ContestantName[] = ['crier', 'pgboss', 'graphile', 'raw', 'raw-nonotify'];

/**
 * The queues (crier: subscriptions) a scenario uses. Fan-out uses several on one topic; with
 * `topics`, queue i takes topics[i] alone (many-subscriptions: no fan-out).
 */
export interface Layout {
  topic: string;
  queues: string[];
  topics?: string[];
}

export interface Publisher {
  /** One event in its own transaction (to layout.topics[queue] when the layout has them). */
  one(payload: object, queue?: number): Promise<void>;
  /** Many events in one transaction (likewise). */
  many(payloads: object[], queue?: number): Promise<void>;
  close(): Promise<void>;
}

export interface RunningWorker {
  stop(): Promise<void>;
}

/** Settings a contestant may be tuned with (the sweep explores them; the defaults are the best found). */
export type Tuning = Record<string, unknown>;

export interface Adapter {
  name: ContestantName;
  /** Installs the contestant's schema and declares the layout's queues in a fresh database. */
  install(url: string, layout: Layout, tuning: Tuning): Promise<void>;
  /** A publisher with up to `connections` connections (calls in flight). */
  publisher(url: string, layout: Layout, connections: number, tuning: Tuning): Promise<Publisher>;
  /** Starts a worker that calls `handle` once per delivery (payload as published). */
  worker(url: string, layout: Layout, handle: (payload: any) => void, tuning: Tuning): Promise<RunningWorker>;
  /** Deliveries not yet completed and committed (0 means drained). */
  remaining(url: string): Promise<number>;
  /** Whether the contestant can deliver one event to several queues (fan-out). */
  fanOut: boolean;
}

export async function loadAdapter(name: ContestantName): Promise<Adapter> {
  // Dynamic import: a cell loads only its own contestant's library (it matters for memory figures).
  switch (name) {
    case 'crier':
      return (await import('./adapters/crier.ts')).adapter;
    case 'pgboss':
      return (await import('./adapters/pgboss.ts')).adapter;
    case 'graphile':
      return (await import('./adapters/graphile.ts')).adapter;
    case 'raw':
      return (await import('./adapters/raw.ts')).adapter;
    case 'raw-nonotify':
      return (await import('./adapters/raw-nonotify.ts')).adapter;
  }
}
