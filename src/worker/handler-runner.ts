// Running the handlers of one subscription inside one worker process: the deliveries its
// ClaimScheduler claimed wait in a queue for a handler slot, run (invokeHandler is the one place a
// handler is called), time out, and settle into acks (the worker's AckBuffer). It never claims:
// when a slot frees up it tells the scheduler, which decides when to claim again.
import type postgres from 'postgres';
import type { Instrumentation } from '../instrumentation.ts';
import { debugEnabled, type Logger } from '../logger.ts';
import type { AckBuffer, FailureWritten } from './acks.ts';
import type { AttemptEvent, WorkerEmitter } from './events.ts';
import { toEvent, type CrierEvent, type Handler } from './event.ts';
import { describeFailure } from './failure.ts';
import { AttemptContext, type ContextSources } from './handler-context.ts';
import type { ClaimedDelivery, Protocol } from './protocol.ts';
import { runTransactional, type TransactionalOutcome } from './transactional.ts';

export interface RunnerSettings {
  name: string;
  handler: Handler<any, any>;
  concurrency: number;
  maxAttempts: number;
  timeoutMs: number;
  /** The handler runs in a transaction that also carries its ack (crier.complete). */
  transactional: boolean;
  /** The subscription's fixed retry schedule in ms; null: the exponential backoff crier.fail applies. */
  retrySchedule: readonly number[] | null;
  /** Its publishHeaders go into ctx.publish (the handler comes already wrapped by instrumentHandler). */
  instrumentation?: Instrumentation;
}

/** How the runner reaches its scheduler, without knowing it. */
export interface RunnerCallbacks {
  /** A handler settled (a slot is free, or will be once queued ones start): there may be room to claim. */
  slotFreed(): void;
  /** A failure ack was written as a retry, due in `inMs`. */
  retryDue(inMs: number): void;
}

/** setTimeout fires at once for longer delays (a timeout of '30d'); the timer then just re-arms. */
const maxTimerDelayMs = 2 ** 31 - 1;

/** A handler still running after this share of its timeout is logged once as slow. */
const slowShareOfTimeout = 0.5;

/** A delivery this subscription holds a lease on: running, or claimed ahead and queued. */
export class InFlight {
  /** The lease was lost (heartbeat refused): the outcome must not be acked. */
  lost = false;
  /** When the handler started (ms since the epoch; 0: not yet). */
  startedAt = 0;
  /** When the running handler times out (ms since the epoch). */
  deadline = Infinity;
  /** Logged as slow already (see slowShareOfTimeout). */
  reportedSlow = false;
  private controller: AbortController | undefined;
  private finished = false;
  private waiters: (() => void)[] | undefined;

  constructor(readonly delivery: ClaimedDelivery) {}

  /** Made on first use: most handlers never read their signal. */
  get signal(): AbortSignal {
    return (this.controller ??= new AbortController()).signal;
  }

  abort(reason: Error): void {
    (this.controller ??= new AbortController()).abort(reason);
  }

  /** Resolves once the attempt has an outcome: its handler settled or timed out. */
  settled(): Promise<void> {
    if (this.finished) return Promise.resolve();
    return new Promise((resolve) => (this.waiters ??= []).push(resolve));
  }

  /** Marks the outcome as decided; false if it already was (a handler settling after its timeout). */
  finish(): boolean {
    if (this.finished) return false;
    this.finished = true;
    this.waiters?.forEach((resolve) => resolve());
    return true;
  }
}

// Held deliveries are in two arrays (queued, running), never in a Map or Set: V8 keeps a rehashed
// table's entries for its iterators, linked to the next table, so once a full GC had promoted the
// collection's table, every delivery listed after it (its claimed row, payload and all) stayed
// reachable through young GCs until the next full GC: promoted, and the young generation doubled
// (docs/benchmarks.md, "Where crier loses time", item 6).
export class HandlerRunner {
  /** Claimed ahead, waiting for a handler slot (only when batchSize > concurrency). */
  private readonly queue: InFlight[] = [];
  /** Handlers running, oldest first: the first one times out first. */
  private readonly running: InFlight[] = [];
  /** Synchronous handlers that returned, to settle in the next microtask. */
  private readonly returned: InFlight[] = [];
  private timeoutTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  /** What every handler context of this subscription shares. */
  private readonly contextSources: ContextSources;

  constructor(
    readonly settings: RunnerSettings,
    private readonly protocol: Protocol,
    private readonly acks: AckBuffer,
    private readonly logger: Logger,
    private readonly events: WorkerEmitter,
    private readonly callbacks: RunnerCallbacks,
  ) {
    const { name: subscription, maxAttempts, instrumentation } = settings;
    // sql is read per attempt: the worker replaces its client when one fails (client.ts).
    this.contextSources = { subscription, maxAttempts, schema: protocol.schema, instrumentation, get sql() { return protocol.sql; } };
  }

  /** The stored subscription's maxAttempts, when it differs from the code's (src/subscriptions.ts). */
  adoptMaxAttempts(maxAttempts: number): void {
    this.settings.maxAttempts = maxAttempts;
    this.contextSources.maxAttempts = maxAttempts;
  }

  /** Deliveries held: running plus queued. */
  get held(): number {
    return this.queue.length + this.running.length;
  }

  /** Every delivery this subscription holds a lease on: running, or claimed ahead and queued. */
  entries(): InFlight[] {
    return [...this.running, ...this.queue];
  }

  /** Whether `entry` is still held (false once it settled, was dropped or handed back). */
  holds(entry: InFlight): boolean {
    return this.running.includes(entry) || this.queue.includes(entry);
  }

  /** Claimed ahead, waiting for a handler slot. */
  get queued(): number {
    return this.queue.length;
  }

  /** Takes what a claim brought: queued, and started while slots are free. */
  accept(deliveries: readonly ClaimedDelivery[]): void {
    for (const delivery of deliveries) {
      this.queue.push(new InFlight(delivery));
    }
    this.pump();
  }

  /** Starts no more handlers; those running go on (the worker waits for them). */
  stopStarting(): void {
    this.stopping = true;
  }

  /** Takes out the deliveries claimed ahead and never started (the worker hands them back). */
  takeUnstarted(): ClaimedDelivery[] {
    const unstarted = this.queue.splice(0);
    return unstarted.filter((entry) => !entry.lost).map((entry) => entry.delivery);
  }

  /** Starts queued deliveries while handler slots are free. */
  private pump(): void {
    while (!this.stopping && this.running.length < this.settings.concurrency && this.queue.length > 0) {
      const entry = this.queue.shift()!;
      if (entry.lost) continue; // its lease was taken over while queued
      this.execute(entry);
    }
  }

  private execute(entry: InFlight): void {
    const { timeoutMs, transactional } = this.settings;
    const event = toEvent(entry.delivery);
    entry.startedAt = Date.now();
    entry.deadline = entry.startedAt + timeoutMs;
    this.running.push(entry);
    this.armTimeout();

    if (transactional) {
      this.executeTransactional(entry, event);
      return;
    }
    let result: unknown;
    try {
      result = this.invokeHandler(entry, event);
      if (typeof (result as PromiseLike<unknown> | undefined)?.then !== 'function') {
        // A synchronous handler: settled in one microtask with the others this pump starts,
        // rather than through a promise and two closures each.
        if (this.returned.push(entry) === 1) queueMicrotask(this.settleReturned);
        return;
      }
    } catch (error) {
      this.failLater(entry, error); // as a rejection would: pump is running
      return;
    }
    this.awaitHandler(entry, result as PromiseLike<unknown>);
  }

  /** The one place a handler is called: an attempt of `entry`, inside its transaction when transactional. */
  private invokeHandler(entry: InFlight, event: CrierEvent, tx?: postgres.TransactionSql<{}>): unknown {
    return this.settings.handler(event, new AttemptContext(this.contextSources, entry.delivery, event, entry, tx));
  }

  private executeTransactional(entry: InFlight, event: CrierEvent): void {
    const idleLimitMs = this.settings.timeoutMs + Math.max(this.protocol.client.queryTimeoutMs, 1000);
    const run = (tx: postgres.TransactionSql<{}>) => this.invokeHandler(entry, event, tx);
    runTransactional(this.contextSources.sql, this.protocol, entry.delivery, entry.signal, run, idleLimitMs).then(
      (outcome) => this.settle(entry, undefined, outcome),
      (error: unknown) => this.failed(entry, error),
    );
  }

  /** Apart from execute, so that running a synchronous handler allocates no closures. */
  private awaitHandler(entry: InFlight, result: PromiseLike<unknown>): void {
    Promise.resolve(result).then(
      () => this.settle(entry, undefined),
      (error: unknown) => this.failed(entry, error),
    );
  }

  private failLater(entry: InFlight, error: unknown): void {
    queueMicrotask(() => this.failed(entry, error));
  }

  private failed(entry: InFlight, error: unknown): void {
    this.settle(entry, error ?? new Error('handler threw a nullish value'));
  }

  private readonly settleReturned = () => {
    for (const entry of this.returned.splice(0)) this.settle(entry, undefined);
  };

  /**
   * One timer per subscription, set for the oldest running handler (every handler of a
   * subscription gets the same timeout, so the oldest is the first due): no timer per delivery.
   * It fires first when that handler turns slow (half its timeout), then when it times out. The
   * handlers already reported slow are the oldest ones, so the first not reported is found at once.
   */
  private armTimeout(): void {
    if (this.timeoutTimer !== undefined || this.running.length === 0) return;
    let next = Infinity;
    for (const entry of this.running) {
      next = Math.min(next, entry.deadline);
      if (!entry.reportedSlow) {
        next = Math.min(next, entry.startedAt + this.settings.timeoutMs * slowShareOfTimeout);
        break;
      }
    }
    this.timeoutTimer = setTimeout(() => {
      this.timeoutTimer = undefined;
      this.checkRunning();
    }, Math.min(maxTimerDelayMs, Math.max(0, next - Date.now())));
  }

  /** Times out the overdue handlers and reports the newly slow ones. */
  private checkRunning(): void {
    const now = Date.now();
    const slowAfterMs = this.settings.timeoutMs * slowShareOfTimeout;
    for (const entry of [...this.running]) { // a copy: settle() takes timed-out entries out
      if (entry.deadline <= now) {
        const error = new Error(`handler timed out after ${this.settings.timeoutMs}ms`);
        entry.abort(error);
        this.settle(entry, error); // the handler may still finish later: nobody is listening then
        continue;
      }
      if (entry.startedAt + slowAfterMs > now) break;
      if (entry.reportedSlow) continue;
      entry.reportedSlow = true;
      const runningMs = now - entry.startedAt;
      this.logger.warn(
        { ...this.attemptFields(entry), runningMs, timeoutMs: this.settings.timeoutMs },
        `handler slow: still running after ${runningMs}ms (times out at ${this.settings.timeoutMs}ms)`,
      );
    }
    this.armTimeout();
  }

  private settle(entry: InFlight, error: unknown, outcome?: TransactionalOutcome): void {
    if (!entry.finish()) return; // timed out before it settled
    const { deliveryId, attempt } = entry.delivery;
    // Handlers mostly settle in the order they started: found near the front.
    const at = this.running.indexOf(entry);
    if (at !== -1) this.running.splice(at, 1);
    if (this.running.length === 0 && this.timeoutTimer !== undefined) {
      clearTimeout(this.timeoutTimer);
      this.timeoutTimer = undefined;
    }
    this.pump();
    this.callbacks.slotFreed();
    const durationMs = Date.now() - entry.startedAt;
    if (outcome === 'done') {
      this.handled(entry, durationMs); // acked in the handler's own transaction
      return;
    }
    if (entry.lost || outcome === 'lease-lost') {
      this.logger.warn(
        { ...this.attemptFields(entry), durationMs },
        `subscription "${this.settings.name}": delivery ${deliveryId} finished after its lease was lost; its outcome is dropped (another attempt owns it)`,
      );
      return;
    }
    if (error === undefined) {
      this.acks.complete(deliveryId, attempt);
      this.handled(entry, durationMs);
      return;
    }
    const failure = describeFailure(error, this.settings.retrySchedule, attempt);
    this.acks.fail({ deliveryId, attempt, ...failure }, (written) => this.failureWritten(entry, durationMs, error, failure.error, written));
  }

  private handled(entry: InFlight, durationMs: number): void {
    if (debugEnabled(this.logger)) this.logger.debug!({ ...this.attemptFields(entry), durationMs }, 'handler done');
    if (this.events.has('handled')) this.events.emit('handled', this.attemptEvent(entry, durationMs));
  }

  /**
   * A failed attempt's ack is written: its retry is due, or the delivery is dead. Logged here, once
   * per failure, because only now is it known which (`text`: the error as last_error records it).
   */
  private failureWritten(entry: InFlight, durationMs: number, error: unknown, text: string, written: FailureWritten): void {
    const fields = { ...this.attemptFields(entry), maxAttempts: this.settings.maxAttempts, durationMs, error: text };
    if (written.state === 'pending') {
      this.callbacks.retryDue(written.dueInMs);
      this.logger.warn({ ...fields, retryAt: written.availableAt }, 'handler failed; retrying');
      if (this.events.has('retry')) this.events.emit('retry', { ...this.attemptEvent(entry, durationMs), error, retryAt: written.availableAt });
    } else {
      this.logger.error(fields, 'handler failed; the delivery is dead');
      if (this.events.has('dead')) this.events.emit('dead', { ...this.attemptEvent(entry, durationMs), error });
    }
  }

  /** What every record about an attempt names. */
  private attemptFields({ delivery }: InFlight): { subscription: string; deliveryId: string; eventId: string; topic: string; attempt: number } {
    return { subscription: this.settings.name, deliveryId: delivery.deliveryId, eventId: delivery.eventId, topic: delivery.topic, attempt: delivery.attempt };
  }

  private attemptEvent({ delivery, startedAt }: InFlight, durationMs: number): AttemptEvent {
    return {
      subscription: this.settings.name,
      deliveryId: delivery.deliveryId,
      eventId: delivery.eventId,
      topic: delivery.topic,
      attempt: delivery.attempt,
      publishedAt: delivery.createdAt,
      startedAt: new Date(startedAt),
      durationMs,
    };
  }
}
