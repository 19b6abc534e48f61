// The worker processes of the last day, from the crier.workers view: who is live, stale (stopped
// beating without stopping: killed, hung or cut off) or stopped, where, serving what, holding what.
import { query, toNumber, type AdminDb } from './db.ts';

export interface WorkerInfo {
  /** The id its claims write in crier.deliveries.worker. */
  worker: string;
  host: string;
  pid: number;
  /** The crier version it runs. */
  version: string;
  subscriptions: string[];
  /** live: seen within three heartbeats; stale: not seen since; stopped: stopped cleanly. */
  status: 'live' | 'stale' | 'stopped';
  startedAt: Date;
  lastSeenAt: Date;
  stoppedAt: Date | null;
  heartbeatMs: number;
  /** Deliveries it holds now (claimed, not finished). */
  running: number;
}

export interface WorkerFilter {
  /** Only workers serving this subscription. */
  subscription?: string;
  /** Also those that stopped or went stale longer ago than this many ms (default: live ones, and those gone within the last hour). */
  goneWithinMs?: number;
}

/** Live workers first, then the recently gone, most recently seen first. */
export async function listWorkers(db: AdminDb, filter: WorkerFilter = {}): Promise<WorkerInfo[]> {
  const rows = await query(
    db,
    `SELECT worker, host, pid, version, subscriptions, status, started_at, last_seen_at, stopped_at, heartbeat_ms, running
     FROM crier.workers
     WHERE ($1::text IS NULL OR $1::text = ANY (subscriptions))
       AND (status = 'live' OR last_seen_at >= now() - $2::bigint * interval '1 millisecond')
     ORDER BY status = 'live' DESC, last_seen_at DESC, worker`,
    [filter.subscription ?? null, filter.goneWithinMs ?? 3_600_000],
  );
  return rows.map((r) => ({
    worker: r.worker,
    host: r.host,
    pid: r.pid,
    version: r.version,
    subscriptions: r.subscriptions,
    status: r.status,
    startedAt: r.started_at,
    lastSeenAt: r.last_seen_at,
    stoppedAt: r.stopped_at,
    heartbeatMs: r.heartbeat_ms,
    running: toNumber(r.running),
  }));
}
