// Acks are batched: outcomes queue here and go to Postgres in one call per kind, one flush in flight
// at a time, so the batch grows by itself under load and stays a single round trip when idle.
// Completions usually leave earlier, riding along with the next claim (takeCompletions).
// A flush that fails (connection lost) is retried; the (worker, attempt) guard in SQL makes a late
// or repeated ack harmless. A failure written as a retry tells its loop when the retry falls due:
// crier.fail sends no NOTIFY, and the loop may have parked while the ack was on its way.
import { errorMessage, type Logger } from '../logger.ts';
import type { Completions, Failure, Protocol } from './protocol.ts';

const completionFallbackMs = 50;

/** What became of a failure once written: retried (pending, due at availableAt) or dead. */
export interface FailureWritten {
  state: 'pending' | 'dead';
  availableAt: Date;
  /** Ms until the retry is due (pending). */
  dueInMs: number;
}

/** A failure waiting to be written, and whom to tell what became of it. */
interface QueuedFailure {
  failure: Failure;
  written: ((outcome: FailureWritten) => void) | undefined;
}

export class AckBuffer {
  // Two flat arrays rather than an object per completion: they wait for the next claim, often
  // across a young-generation GC.
  private completions: Completions = { ids: [], attempts: [] };
  private failures: QueuedFailure[] = [];
  private flushing: Promise<void> | undefined;
  private retryDelay = 0;
  private fallbackTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly protocol: Protocol,
    private readonly logger: Logger,
    private readonly onRefused: (deliveryIds: string[]) => void,
  ) {}

  complete(deliveryId: string, attempt: number): void {
    this.completions.ids.push(deliveryId);
    this.completions.attempts.push(attempt);
    // The claim that the freed slot triggers normally takes this completion along; the flush is
    // only the fallback (a loop backing off, or no claim coming).
    this.fallbackTimer ??= setTimeout(() => {
      this.fallbackTimer = undefined;
      if (this.completions.ids.length > 0) this.schedule();
    }, completionFallbackMs).unref();
  }

  /** Queues a failed attempt; `written` is told what became of it (retry or dead), once written. */
  fail(failure: Failure, written?: (outcome: FailureWritten) => void): void {
    this.failures.push({ failure, written });
    this.schedule();
  }

  /** Hands the queued completions to a claim that will write them (see Protocol.claim). */
  takeCompletions(): Completions {
    const taken = this.completions;
    this.completions = { ids: [], attempts: [] };
    return taken;
  }

  /** Takes back completions whose claim failed; they go out with the next flush or claim. */
  restoreCompletions(completions: Completions): void {
    if (completions.ids.length === 0) return;
    this.putBack(completions);
    this.schedule();
  }

  /** Queues `completions` ahead of those that came since they were taken. */
  private putBack({ ids, attempts }: Completions): void {
    this.completions.ids.unshift(...ids);
    this.completions.attempts.unshift(...attempts);
  }

  get size(): number {
    return this.completions.ids.length + this.failures.length;
  }

  /** Resolves when everything queued so far is written (or given up on after `deadline`). */
  async drain(deadline = Infinity): Promise<void> {
    while (this.size > 0 || this.flushing) {
      if (Date.now() > deadline) {
        this.logger.warn({ acks: this.size }, `gave up writing ${this.size} acks; their leases will expire and they will be retried`);
        return;
      }
      this.schedule();
      await this.flushing;
    }
  }

  private schedule(): void {
    if (this.flushing) return;
    this.flushing = this.flushLoop().finally(() => {
      this.flushing = undefined;
    });
  }

  private async flushLoop(): Promise<void> {
    // Let handlers that finish in the same tick join the batch.
    await new Promise((resolve) => setImmediate(resolve));
    while (this.size > 0) {
      const completions = this.takeCompletions();
      const failures = this.failures.splice(0);
      let failed: unknown;
      if (completions.ids.length > 0) {
        await this.writeCompletions(completions).catch((error) => {
          this.putBack(completions);
          failed = error;
        });
      }
      if (failures.length > 0) {
        await this.writeFailures(failures).catch((error) => {
          this.failures.unshift(...failures);
          failed = error;
        });
      }
      if (failed === undefined) {
        this.retryDelay = 0;
      } else {
        this.retryDelay = Math.min(5000, Math.max(50, this.retryDelay * 2));
        this.logger.warn({ error: errorMessage(failed), retryInMs: this.retryDelay }, `could not write acks (${errorMessage(failed)}); retrying in ${this.retryDelay}ms`);
        await new Promise((resolve) => setTimeout(resolve, this.retryDelay));
      }
    }
  }

  private async writeCompletions({ ids, attempts }: Completions): Promise<void> {
    const done = await this.protocol.complete(ids, attempts);
    const refused = ids.filter((id) => !done.has(id));
    if (refused.length > 0) this.onRefused(refused);
  }

  private async writeFailures(queued: QueuedFailure[]): Promise<void> {
    const written = new Map((await this.protocol.fail(queued.map((q) => q.failure))).map((r) => [r.deliveryId, r]));
    const refused: string[] = [];
    for (const { failure, written: tell } of queued) {
      const row = written.get(failure.deliveryId);
      if (row === undefined) refused.push(failure.deliveryId);
      else tell?.(row as FailureWritten);
    }
    if (refused.length > 0) this.onRefused(refused);
  }
}
