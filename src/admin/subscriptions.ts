// Operator actions on subscriptions: pause, resume, remove. Each is one call of the SQL function of
// the same name (crier.pause_subscription, ...), so SQL users have the same operations.
import { query, toNumber, type AdminDb } from './db.ts';

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
