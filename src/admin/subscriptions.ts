// Operator actions on subscriptions: pause, resume, remove. Each is one call of the SQL function of
// the same name (crier.pause_subscription, ...), so SQL users have the same operations.
import { query, toNumber, type AdminDb } from './db.ts';

export interface SubscriptionInfo {
  name: string;
  topics: string[];
  paused: boolean;
  maxAttempts: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  leaseMs: number;
  createdAt: Date;
  updatedAt: Date;
}

/** Every subscription with its policies, by name. */
export async function listSubscriptions(db: AdminDb): Promise<SubscriptionInfo[]> {
  const rows = await query(
    db,
    `SELECT name, topics, paused, max_attempts, backoff_base_ms, backoff_max_ms, lease_ms, created_at, updated_at
     FROM crier.subscriptions ORDER BY name`,
  );
  return rows.map((r) => ({
    name: r.name,
    topics: r.topics,
    paused: r.paused,
    maxAttempts: r.max_attempts,
    backoffBaseMs: r.backoff_base_ms,
    backoffMaxMs: r.backoff_max_ms,
    leaseMs: r.lease_ms,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  }));
}

/** Stops claims for the subscription (deliveries keep accumulating). Returns false if already paused. */
export async function pauseSubscription(db: AdminDb, name: string): Promise<boolean> {
  const [row] = await query(db, 'SELECT crier.pause_subscription($1) AS changed', [name]);
  return row!.changed as boolean;
}

/** Lets workers claim again, and wakes them. Returns false if it was not paused. */
export async function resumeSubscription(db: AdminDb, name: string): Promise<boolean> {
  const [row] = await query(db, 'SELECT crier.resume_subscription($1) AS changed', [name]);
  return row!.changed as boolean;
}

export interface RemoveOptions {
  /** Remove even with pending or running deliveries (they are deleted unhandled). */
  force?: boolean;
}

/**
 * Deletes the subscription and all its deliveries (the events stay). Refuses with
 * CRIER_SUBSCRIPTION_BUSY while deliveries are pending or running, unless `force`.
 * Returns the number of deliveries deleted.
 */
export async function removeSubscription(db: AdminDb, name: string, options: RemoveOptions = {}): Promise<number> {
  const [row] = await query(db, 'SELECT crier.remove_subscription($1, $2) AS deleted', [name, options.force ?? false]);
  return toNumber(row!.deleted);
}
