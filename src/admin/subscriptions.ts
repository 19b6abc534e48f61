// Operator actions on subscriptions: create (declare ahead of its workers), pause, resume, remove.
// Each is one call of the SQL function of the same name (crier.create_subscription, ...), so SQL
// users have the same operations.
import { toSubscriptionRow, type SubscriptionHistory, type SubscriptionSpec } from '../subscriptions.ts';
import { query, toNumber, type AdminDb } from './db.ts';
import { replay, type ReplayResult } from './replay.ts';

export interface SubscriptionInfo {
  name: string;
  topics: string[];
  paused: boolean;
  maxAttempts: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  leaseMs: number;
  /** What its deliveries leave behind: 'full' (every row) or 'failures' (SubscriptionSpec.history). */
  history: SubscriptionHistory;
  createdAt: Date;
  updatedAt: Date;
}

/** Every subscription with its policies, by name. */
export async function listSubscriptions(db: AdminDb): Promise<SubscriptionInfo[]> {
  const rows = await query(
    db,
    `SELECT name, topics, paused, max_attempts, backoff_base_ms, backoff_max_ms, lease_ms, history, created_at, updated_at
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
    history: r.history,
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

export interface CreateSubscriptionOptions extends SubscriptionSpec {
  /**
   * Backfill: also deliver the matching events published from this point on (an event id or a
   * time) until the subscription was created, through crier.replay.
   */
  from?: string | number | Date;
}

export interface CreateSubscriptionResult {
  subscription: string;
  /** What changed: a new subscription, new topics or policies for an existing one, or nothing. */
  outcome: 'created' | 'updated' | 'unchanged';
  /** With `from`: what the backfill queued. */
  backfill?: ReplayResult;
}

/**
 * Declares a subscription ahead of its workers, so that events published before any worker starts
 * are delivered to it; or brings an existing one to these topics and policies (what only an
 * operator may do: workers adopt the stored subscription). Options left out keep their stored value
 * (the defaults for a new subscription). Idempotent.
 */
export async function createSubscription(db: AdminDb, options: CreateSubscriptionOptions): Promise<CreateSubscriptionResult> {
  const row = toSubscriptionRow(options); // the checks of a worker's declaration, before anything is written
  // An option left out is sent as NULL: the stored value stays.
  const given = <T>(option: unknown, value: T) => (option === undefined ? null : value);
  const [created] = await query(
    db,
    `SELECT crier.create_subscription($1::text, ARRAY(SELECT jsonb_array_elements_text($2::text::jsonb)), $3::integer, $4::integer, $5::integer, $6::integer,
       $7::boolean, $8::text, $9::text) AS outcome`,
    [
      row.name,
      JSON.stringify(row.topics),
      given(options.maxAttempts, row.maxAttempts),
      given(options.backoff?.base, row.backoffBaseMs),
      given(options.backoff?.max, row.backoffMaxMs),
      given(options.lease, row.leaseMs),
      given(options.ordered, row.ordered),
      typeof options.ordered === 'object' && options.ordered.onDead !== undefined ? row.orderedOnDead : null,
      given(options.history, row.history),
    ],
  );
  const result: CreateSubscriptionResult = { subscription: row.name, outcome: created!.outcome };
  if (options.from !== undefined) {
    result.backfill = await replay(db, { subscription: row.name, from: options.from });
  }
  return result;
}
