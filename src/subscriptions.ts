// Subscriptions as rows of crier.subscriptions: created ahead by an operator
// (crier.create_subscription: SQL, `crier subscriptions create`, the admin API), or by the first
// worker that starts with one. The stored row is the truth: a worker adopts it and never changes
// it; topics, policies and pausing belong to operators.
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
  /**
   * What the subscription's deliveries leave behind (default 'full'). 'full': every delivery keeps
   * its row, done ones too (the audit trail of each handling). 'failures': a delivery that succeeds
   * at its first attempt is deleted when acked; one that failed an attempt, lost its lease, was
   * requeued or ends dead keeps its row and its errors. The event stays in crier.events either way.
   */
  history?: SubscriptionHistory;
}

export type SubscriptionHistory = 'full' | 'failures';
export const subscriptionHistories: readonly SubscriptionHistory[] = ['full', 'failures'];

export interface SubscriptionRow {
  name: string;
  topics: string[];
  maxAttempts: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  leaseMs: number;
  ordered: boolean;
  orderedOnDead: 'block' | 'skip';
  history: SubscriptionHistory;
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
  const history = spec.history ?? 'full';
  if (!subscriptionHistories.includes(history)) {
    throw new CrierError(
      'CRIER_INVALID_OPTION',
      `subscription "${spec.name}": history must be 'full' (keep every delivery) or 'failures' (keep only deliveries that did not succeed at their first attempt), got ${quote(history)}`,
    );
  }
  return {
    name: spec.name, topics: [...spec.topics], maxAttempts, backoffBaseMs, backoffMaxMs, leaseMs,
    ordered: ordered !== false, orderedOnDead, history,
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

// A worker creates the subscriptions that do not exist yet and reads back what is stored: an
// existing subscription is never changed from a worker (only crier.create_subscription does that,
// an operator's act), so a worker role cannot widen its topics to receive other events.
const createMissing = `
INSERT INTO crier.subscriptions (name, topics, max_attempts, backoff_base_ms, backoff_max_ms, lease_ms, ordered, ordered_on_dead, history)
SELECT x.name, x.topics, x.max_attempts, x.backoff_base_ms, x.backoff_max_ms, x.lease_ms, x.ordered, x.ordered_on_dead, x.history
FROM jsonb_to_recordset($1::text::jsonb)
  AS x(name text, topics text[], max_attempts integer, backoff_base_ms integer, backoff_max_ms integer, lease_ms integer,
       ordered boolean, ordered_on_dead text, history text)
ON CONFLICT (name) DO NOTHING`;

// As JSON text: a worker's pool does not fetch array types, so it could not read text[] itself.
const readStored = `
SELECT json_build_object('name', name, 'topics', topics, 'max_attempts', max_attempts, 'backoff_base_ms', backoff_base_ms,
       'backoff_max_ms', backoff_max_ms, 'lease_ms', lease_ms, 'ordered', ordered, 'ordered_on_dead', ordered_on_dead,
       'history', history, 'paused', paused)::text AS row
FROM crier.subscriptions WHERE name IN (SELECT jsonb_array_elements_text($1::text::jsonb))`;

/** A subscription as stored, and how the code that declared it differs (empty: not at all). */
export interface DeclaredSubscription {
  stored: SubscriptionRow;
  /** One entry per setting that differs: the stored value wins. */
  differences: { setting: string; stored: unknown; code: unknown }[];
}

const settings = ['topics', 'maxAttempts', 'backoffBaseMs', 'backoffMaxMs', 'leaseMs', 'ordered', 'orderedOnDead', 'history'] as const;

/**
 * Creates the subscriptions that do not exist yet; existing ones (created by an operator with
 * crier.create_subscription, or by an earlier worker) are adopted as they are. Returns each as
 * stored, with its differences from the code.
 */
export async function declareSubscriptions(
  sql: postgres.Sql<any>,
  schema: string,
  specs: readonly SubscriptionSpec[],
): Promise<DeclaredSubscription[]> {
  const wanted = specs.map(toSubscriptionRow);
  if (wanted.length === 0) return [];
  const rows = wanted.map((r) => ({
    name: r.name,
    topics: r.topics,
    max_attempts: r.maxAttempts,
    backoff_base_ms: r.backoffBaseMs,
    backoff_max_ms: r.backoffMaxMs,
    lease_ms: r.leaseMs,
    ordered: r.ordered,
    ordered_on_dead: r.orderedOnDead,
    history: r.history,
  }));
  try {
    await sql.unsafe(inSchema(createMissing, schema), [JSON.stringify(rows)]);
    const found = await sql.unsafe(inSchema(readStored, schema), [JSON.stringify(wanted.map((r) => r.name))]);
    const byName = new Map(found.map(({ row }) => JSON.parse(row as string)).map((r) => [r.name as string, r]));
    return wanted.map((code) => {
      const r = byName.get(code.name);
      if (!r) {
        throw new CrierError('CRIER_UNKNOWN_SUBSCRIPTION', `subscription "${code.name}" was removed while this worker was declaring it`);
      }
      const stored: SubscriptionRow = {
        name: r.name, topics: r.topics, maxAttempts: r.max_attempts, backoffBaseMs: r.backoff_base_ms,
        backoffMaxMs: r.backoff_max_ms, leaseMs: r.lease_ms, ordered: r.ordered, orderedOnDead: r.ordered_on_dead, history: r.history,
        paused: r.paused,
      };
      const differences = settings
        .filter((setting) => JSON.stringify(stored[setting]) !== JSON.stringify(code[setting]))
        .map((setting) => ({ setting, stored: stored[setting], code: code[setting] }));
      return { stored, differences };
    });
  } catch (error) {
    throw fromDatabaseError(error);
  }
}
