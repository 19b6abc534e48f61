// Subscriptions are declared from code: an idempotent upsert when a worker starts, visible as rows of
// crier.subscriptions. Declaring never touches `paused`, which belongs to operators.
import type postgres from 'postgres';
import { toMilliseconds, type Duration } from './duration.ts';
import { CrierError, fromDatabaseError, quote } from './errors.ts';
import { inSchema } from './schema-name.ts';
import { assertPattern } from './topics.ts';

export interface RetryPolicy {
  /** Attempts before a delivery is dead (default 5). */
  maxAttempts?: number;
  /** Exponential backoff between attempts: base * 2^(attempt-1), capped at max, with jitter (defaults 1s, 5m). */
  backoff?: { base?: Duration; max?: Duration };
  /**
   * A fixed retry schedule instead of the backoff: the delay after the first failed attempt, the
   * second, ...; the last one repeats until maxAttempts (e.g. ['5s', '30s', '5m']). No jitter.
   */
  retry?: readonly Duration[];
  /** How long a claimed delivery is held before another worker may take it over (default 30s). Heartbeats renew it. */
  lease?: Duration;
}

export interface SubscriptionSpec extends RetryPolicy {
  name: string;
  /** Topic patterns: "order.created", "order.*" (one segment), "order.#" (zero or more), "#". */
  topics: readonly string[];
  /**
   * Per-key FIFO: events with the same (non-null) key are handled one at a time, in publish order,
   * retries included; different keys in parallel. onDead says what a dead delivery does to its key:
   * 'block' it until requeued (default, listed in crier.blocked_keys) or 'skip' to the next event.
   */
  ordered?: boolean | { onDead?: 'block' | 'skip' };
}

export interface SubscriptionRow {
  name: string;
  topics: string[];
  maxAttempts: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  leaseMs: number;
  ordered: boolean;
  orderedOnDead: 'block' | 'skip';
  paused: boolean;
}

export const subscriptionNamePattern = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$/;

export function toSubscriptionRow(spec: SubscriptionSpec): Omit<SubscriptionRow, 'paused'> {
  if (typeof spec.name !== 'string' || !subscriptionNamePattern.test(spec.name)) {
    throw new CrierError(
      'CRIER_INVALID_OPTION',
      `subscription name ${quote(spec.name)} is not valid: 1-100 letters, digits, "_", "." or "-"`,
    );
  }
  if (!Array.isArray(spec.topics) || spec.topics.length === 0) {
    throw new CrierError('CRIER_INVALID_OPTION', `subscription "${spec.name}": topics must be a non-empty array of patterns`);
  }
  spec.topics.forEach(assertPattern);
  const maxAttempts = spec.maxAttempts ?? 5;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw new CrierError('CRIER_INVALID_OPTION', `subscription "${spec.name}": maxAttempts must be an integer >= 1`);
  }
  const backoffBaseMs = toMilliseconds(spec.backoff?.base ?? 1000, `subscription "${spec.name}" backoff.base`);
  const backoffMaxMs = toMilliseconds(spec.backoff?.max ?? 300_000, `subscription "${spec.name}" backoff.max`);
  if (backoffMaxMs < backoffBaseMs) {
    throw new CrierError('CRIER_INVALID_OPTION', `subscription "${spec.name}": backoff.max must be >= backoff.base`);
  }
  const leaseMs = toMilliseconds(spec.lease ?? 30_000, `subscription "${spec.name}" lease`);
  if (leaseMs < 100) throw new CrierError('CRIER_INVALID_OPTION', `subscription "${spec.name}": lease must be at least 100ms`);
  const ordered = spec.ordered ?? false;
  const orderedOnDead = typeof ordered === 'object' ? (ordered.onDead ?? 'block') : 'block';
  if ((typeof ordered !== 'boolean' && typeof ordered !== 'object') || ordered === null || !['block', 'skip'].includes(orderedOnDead)) {
    throw new CrierError('CRIER_INVALID_OPTION', `subscription "${spec.name}": ordered must be true, false or { onDead: 'block' | 'skip' }`);
  }
  return {
    name: spec.name, topics: [...spec.topics], maxAttempts, backoffBaseMs, backoffMaxMs, leaseMs,
    ordered: ordered !== false, orderedOnDead,
  };
}

/** Longest delay a retry schedule or RetryLater may ask for: crier.fail takes whole ms as an integer. */
export const maxRetryDelayMs = 2 ** 31 - 1;

/** A retry delay in ms, checked: a whole number of ms from 0 to maxRetryDelayMs (about 24.8 days). */
export function toRetryDelayMs(value: Duration, what: string): number {
  const ms = Math.round(toMilliseconds(value, what));
  if (ms > maxRetryDelayMs) {
    throw new CrierError('CRIER_INVALID_OPTION', `${what}: ${JSON.stringify(value)} is longer than a retry may wait (at most 24d)`);
  }
  return ms;
}

/**
 * The subscription's fixed retry schedule in ms (null: exponential backoff). The worker resolves it
 * per failure and sends the delay with the failure (crier.fail's p_delays_ms).
 */
export function retrySchedule(spec: SubscriptionSpec): number[] | null {
  if (spec.retry === undefined) return null;
  if (spec.backoff !== undefined) {
    throw new CrierError('CRIER_INVALID_OPTION', `subscription "${spec.name}": give either retry (fixed delays) or backoff (exponential), not both`);
  }
  if (!Array.isArray(spec.retry) || spec.retry.length === 0) {
    throw new CrierError('CRIER_INVALID_OPTION', `subscription "${spec.name}": retry must be a non-empty list of delays, e.g. ['5s', '30s', '5m']`);
  }
  return spec.retry.map((delay, i) => toRetryDelayMs(delay, `subscription "${spec.name}" retry[${i}]`));
}

/** The delay after failed attempt `attempt` (1-based) on a schedule: its entry, or the last one. */
export function scheduledDelayMs(schedule: readonly number[], attempt: number): number {
  return schedule[Math.min(attempt, schedule.length) - 1]!;
}

const upsertSubscriptions = `
INSERT INTO crier.subscriptions AS s (name, topics, max_attempts, backoff_base_ms, backoff_max_ms, lease_ms, ordered, ordered_on_dead)
SELECT x.name, x.topics, x.max_attempts, x.backoff_base_ms, x.backoff_max_ms, x.lease_ms, x.ordered, x.ordered_on_dead
FROM jsonb_to_recordset($1::text::jsonb)
  AS x(name text, topics text[], max_attempts integer, backoff_base_ms integer, backoff_max_ms integer, lease_ms integer,
       ordered boolean, ordered_on_dead text)
ON CONFLICT (name) DO UPDATE
SET topics = excluded.topics, max_attempts = excluded.max_attempts, backoff_base_ms = excluded.backoff_base_ms,
    backoff_max_ms = excluded.backoff_max_ms, lease_ms = excluded.lease_ms, ordered = excluded.ordered,
    ordered_on_dead = excluded.ordered_on_dead, updated_at = now()
WHERE (s.topics, s.max_attempts, s.backoff_base_ms, s.backoff_max_ms, s.lease_ms, s.ordered, s.ordered_on_dead)
  IS DISTINCT FROM (excluded.topics, excluded.max_attempts, excluded.backoff_base_ms, excluded.backoff_max_ms, excluded.lease_ms,
                    excluded.ordered, excluded.ordered_on_dead)`;

/** Creates or updates subscriptions; unchanged ones are left alone (no write, no route invalidation). */
export async function declareSubscriptions(
  sql: postgres.Sql<any>,
  schema: string,
  specs: readonly SubscriptionSpec[],
): Promise<void> {
  const rows = specs.map(toSubscriptionRow).map((r) => ({
    name: r.name,
    topics: r.topics,
    max_attempts: r.maxAttempts,
    backoff_base_ms: r.backoffBaseMs,
    backoff_max_ms: r.backoffMaxMs,
    lease_ms: r.leaseMs,
    ordered: r.ordered,
    ordered_on_dead: r.orderedOnDead,
  }));
  if (rows.length === 0) return;
  try {
    await sql.unsafe(inSchema(upsertSubscriptions, schema), [JSON.stringify(rows)]);
  } catch (error) {
    throw fromDatabaseError(error);
  }
}
