// Per-subscription numbers: what `crier status` prints, read from the crier.subscription_stats view.
import type { SubscriptionHistory } from '../subscriptions.ts';
import { assertSubscription, query, toNumber, type AdminDb } from './db.ts';

export interface SubscriptionStats {
  subscription: string;
  topics: string[];
  paused: boolean;
  /** Waiting for a first attempt (or requeued). */
  pending: number;
  running: number;
  /** Pending again after a failed attempt, waiting for the next one. */
  retrying: number;
  dead: number;
  /**
   * Done deliveries kept. With history 'failures' only those that failed (or were requeued) before
   * they succeeded: a delivery that succeeds at its first attempt leaves no row to count.
   */
  done: number;
  /** What the subscription's deliveries leave behind: 'full' or 'failures'. */
  history: SubscriptionHistory;
  /** When the oldest pending delivery was queued; null when nothing is pending. */
  oldestPendingAt: Date | null;
  /** Seconds the oldest due delivery has been waiting; null when nothing is due. */
  lagSeconds: number | null;
  /** Ordered subscriptions: deliveries queued behind an earlier delivery of the same key. */
  waiting: number;
  /** Ordered subscriptions: keys stuck behind a dead (or vanished) head, listed in crier.blocked_keys. */
  blockedKeys: number;
  /** Live workers (crier.workers) serving this subscription. */
  liveWorkers: number;
  /** Running deliveries making no progress: their lease ran out, or their worker is no longer live. */
  stuck: number;
  /** When the oldest stuck delivery stopped moving (its worker's last sign of life, or its lease's end); null when none is stuck. */
  stuckSince: Date | null;
  /** Seconds since stuckSince; null when none is stuck. */
  stuckSeconds: number | null;
}

/** Every subscription's numbers, or one's (CRIER_UNKNOWN_SUBSCRIPTION if it does not exist). */
export async function subscriptionStats(db: AdminDb, subscription?: string): Promise<SubscriptionStats[]> {
  if (subscription !== undefined) await assertSubscription(db, subscription);
  const rows = await query(
    db,
    `SELECT subscription, topics, paused, pending, running, retrying, dead, done, oldest_pending_at, lag_seconds,
            waiting, blocked_keys, live_workers, stuck, stuck_since, stuck_seconds, history
     FROM crier.subscription_stats
     WHERE $1::text IS NULL OR subscription = $1::text
     ORDER BY subscription`,
    [subscription ?? null],
  );
  return rows.map((r) => ({
    subscription: r.subscription,
    topics: r.topics,
    paused: r.paused,
    pending: toNumber(r.pending),
    running: toNumber(r.running),
    retrying: toNumber(r.retrying),
    dead: toNumber(r.dead),
    done: toNumber(r.done),
    history: r.history,
    oldestPendingAt: r.oldest_pending_at,
    lagSeconds: r.lag_seconds == null ? null : Number(r.lag_seconds),
    waiting: toNumber(r.waiting),
    blockedKeys: toNumber(r.blocked_keys),
    liveWorkers: toNumber(r.live_workers),
    stuck: toNumber(r.stuck),
    stuckSince: r.stuck_since,
    stuckSeconds: r.stuck_seconds == null ? null : Number(r.stuck_seconds),
  }));
}
