// What a failed attempt records, and the error a handler throws to choose its own retry delay.
// Shared by the worker's handler runner and the testing harness (src/testing.ts), so both write
// the same last_error, stack and retry delay for the same error.
import type { Duration } from '../duration.ts';
import { CrierError, UnrecoverableError } from '../errors.ts';
import { scheduledDelayMs, toRetryDelayMs } from '../subscriptions.ts';

/**
 * Throw this from a handler to retry after a delay of its choosing (e.g. a rate limit's
 * Retry-After), instead of the subscription's backoff or schedule. The attempt counts: on the last
 * one the delivery is dead as with any failure.
 */
export class RetryLater extends Error {
  override readonly name = 'RetryLater';
  /** The delay before the retry, in ms. */
  readonly delayMs: number;

  constructor(delay: Duration, message?: string, options?: ErrorOptions) {
    const delayMs = toRetryDelayMs(delay, 'RetryLater delay');
    super(message ?? `retry requested in ${delayMs}ms`, options);
    this.delayMs = delayMs;
  }
}

/**
 * What a failed attempt records: its message (last_error), stack, whether to give up at once, and
 * the delay before its retry (RetryLater's, else the schedule's for this attempt; null: backoff).
 */
export function describeFailure(
  error: unknown,
  schedule: readonly number[] | null = null,
  attempt = 1,
): { error: string; stack: string | null; giveUp: boolean; delayMs: number | null } {
  const err = error instanceof Error ? error : new Error(typeof error === 'string' ? error : JSON.stringify(error));
  return {
    error: err instanceof CrierError ? err.message : `${err.name === 'Error' ? '' : `${err.name}: `}${err.message}`,
    stack: err.stack ?? null,
    giveUp: err instanceof UnrecoverableError,
    delayMs: err instanceof RetryLater ? err.delayMs : schedule === null ? null : scheduledDelayMs(schedule, attempt),
  };
}
