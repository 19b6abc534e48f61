// When to claim, for one subscription inside one worker process: claims, park, idle sleeps,
// wake-ups (NOTIFY, freed slots, due retries) and backoff after a failed claim. What it claims it
// hands to its target (handler-runner.ts), which runs the handlers and says when slots free up.
// It never runs a handler.
//
// States, and what moves between them:
//   CLAIMING  claim up to the free handler slots (one round trip, carrying the completions so
//             far), hand the deliveries to the runner. A claim that finds nothing also does, in the
//             same round trip, what comes next: park (when not parked), or report when the next
//             delivery is due (crier.claim's overload in 0012_claim_or_idle).
//             got a full batch          -> unpark if parked, CLAIMING again
//             got some                  -> CLAIMING again
//             got none, not parked      -> it parked (producers will now NOTIFY, the first of
//                                          them once): CLAIMING again, the re-check, in a new
//                                          transaction: it closes the race with a producer that
//                                          committed just before the park became visible
//             got none, parked          -> IDLE until the next delivery it reported is due;
//                                          but while producer transactions that were running
//                                          when it parked may still commit (they saw no park,
//                                          so will not NOTIFY), sleep 2 ms, doubling, and
//                                          re-check until they have ended, or until the next
//                                          re-check would be a poll interval away: the worker's
//                                          poll covers it from there (deliveries/claim.sql)
//   So an event that wakes an idle loop costs three round trips: the claim that gets it, the claim
//   that carries its ack and parks, and the re-check (and more re-checks while other transactions
//   that were running when it parked have not ended).
//   A NOTIFY counts as unparking: the producer that sent it deleted the loop's parked row, so the
//   others stop notifying until the loop parks again (a NOTIFY that arrives while a parking claim is
//   on its way too: its delete may have come first).
//   FULL      every slot busy: wait until a handler settles, then CLAIMING.
//   BACKLOG   the last claim came back full: claims no longer wait for each other. A claim of half
//             the batch goes out as soon as half the batch is free, even while the previous one is
//             on its way (at most two in flight), so Postgres works on the next batch while this
//             process handles the last one. The first claim that comes back short ends it: the
//             loop waits for the other claim, then goes on one claim at a time (CLAIMING, PARK,
//             IDLE).
//   IDLE      sleep until a NOTIFY names this subscription or the next delayed delivery falls
//             due. No timer of its own beyond that: the worker polls once for all its idle
//             subscriptions (polled(): one round trip per poll interval, whatever their number),
//             and wakes this loop when its delivery is due after all (a lost NOTIFY) or when its
//             parked row is gone (it parks again). NOTIFY is a hint; the poll is the safety net.
//             A retry this loop's own failure ack scheduled wakes it too, by a timer: the ack can
//             land after the loop's last claim reported what is due, and a retry sends no NOTIFY.
//   BACKOFF   a claim failed (connection lost, database restarting): wait, with growing delays.
//   STOPPED   stop() was called: no more claims; handlers in flight are the runner's to finish.
//
// The runner queues outcomes in the worker's AckBuffer; each claim takes the completions queued so
// far along.
import { CrierError, fromDatabaseError } from '../errors.ts';
import { errorMessage, type Logger } from '../logger.ts';
import type { AckBuffer } from './acks.ts';
import type { WorkerTrouble } from './events.ts';
import type { ClaimedDelivery, Protocol } from './protocol.ts';

export interface SchedulerSettings {
  name: string;
  /** Deliveries held at once: running plus claimed ahead and waiting their turn. */
  batchSize: number;
  pollIntervalMs: number;
}

/** Where claimed deliveries go (the subscription's HandlerRunner), and what it holds now. */
export interface ClaimTarget {
  /** Deliveries held: running plus claimed ahead and queued. */
  readonly held: number;
  /** Claimed ahead, waiting for a handler slot. */
  readonly queued: number;
  /** Takes what a claim brought. */
  accept(deliveries: readonly ClaimedDelivery[]): void;
}

/** setTimeout fires at once for longer delays; the timer then just re-arms. */
const maxTimerDelayMs = 2 ** 31 - 1;

/** Claims of one subscription on their way at once while there is a backlog. */
const maxClaimsInFlight = 2;

type ClaimOutcome = { claimed: number; parked: boolean; nextDueIn: number | null; running: string | null } | { error: unknown };

/** The first re-check while transactions that ran at the park go on; the delay doubles from there. */
const firstRecheckMs = 2;

export class ClaimScheduler {
  /** Claims on their way, and the slots they may fill. */
  private readonly claims = new Set<Promise<ClaimOutcome>>();
  private reserved = 0;
  private backlog = false;
  private parked = false;
  /** NOTIFYs received: a claim that parked counts as parked only if none arrived meanwhile. */
  private notifications = 0;
  /**
   * Transactions that were running when this loop last parked: a producer among them may still
   * commit an event without a NOTIFY (it saw no park). Re-check, with growing delays, until they
   * have ended.
   */
  private recheck: { running: string; delayMs: number } | undefined;
  private stopping = false;
  /** A wake-up arrived since the last claim began: one token, consumed by the next sleep. */
  private woken = false;
  /** Sleeping in IDLE (parked, nothing due): the worker's poll speaks for this loop. */
  private idling = false;
  private sleeper: { wakeable: boolean; interrupt: () => void } | undefined;
  /**
   * Wakes the loop when the earliest retry its failure acks scheduled, or the delivery the worker's
   * poll reported, falls due. One timer is enough: the claim that wake-up leads to reports when the
   * next pending delivery is due.
   */
  private retryTimer: { at: number; timer: NodeJS.Timeout } | undefined;
  private loop: Promise<void> | undefined;

  constructor(
    readonly settings: SchedulerSettings,
    private readonly protocol: Protocol,
    private readonly acks: AckBuffer,
    private readonly logger: Logger,
    private readonly target: ClaimTarget,
    /** Worker-level trouble (a claim that failed): the worker's 'error' event. */
    private readonly report: (trouble: WorkerTrouble) => void,
  ) {}

  start(): void {
    this.loop = this.run();
  }

  /** A hint that there may be work: a NOTIFY, a freed slot, a reconnect. */
  wake(): void {
    this.woken = true;
    if (this.sleeper?.wakeable) this.sleeper.interrupt();
  }

  /**
   * A producer's NOTIFY: it also deleted this worker's parked row, so producers stop notifying
   * until the loop parks again (which it does, with a re-check, before it next idles).
   */
  notified(): void {
    this.parked = false;
    this.notifications++;
    this.wake();
  }

  /** Parked and asleep with nothing due now: the worker's poll asks about this subscription. */
  get idleParked(): boolean {
    return this.idling && this.parked && !this.stopping;
  }

  /**
   * What the worker's poll found for this subscription while it slept parked: its parked row is gone
   * (a producer woke it and the NOTIFY never came: park again, with a re-check), or its next
   * delivery is due now or at a known time.
   */
  polled(parked: boolean, nextDueIn: number | null): void {
    if (!this.idleParked) return; // it moved on while the poll was on its way
    if (!parked) {
      this.parked = false;
      this.wake();
    } else if (nextDueIn !== null) {
      this.retryDue(nextDueIn);
    }
  }

  /** Stops claiming; resolves once the loop has left its current claim and the claims on their way are back (handed to the target). */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.retryTimer) clearTimeout(this.retryTimer.timer);
    this.sleeper?.interrupt();
    await this.loop;
    await Promise.all(this.claims);
    if (this.parked) {
      this.parked = false;
      await this.protocol.unpark([this.settings.name]).catch(() => {});
    }
  }

  /** A failure ack of this subscription was written: its retry is due in `inMs`. */
  readonly retryDue = (inMs: number): void => {
    if (this.stopping) return;
    const delay = Math.min(maxTimerDelayMs, Math.max(0, Math.ceil(inMs)));
    const at = Date.now() + delay;
    if (this.retryTimer !== undefined) {
      if (this.retryTimer.at <= at) return;
      clearTimeout(this.retryTimer.timer);
    }
    const timer = setTimeout(() => {
      this.retryTimer = undefined;
      this.wake();
    }, delay).unref();
    this.retryTimer = { at, timer };
  };

  private async run(): Promise<void> {
    const { name, batchSize } = this.settings;
    const half = Math.ceil(batchSize / 2);
    let failures = 0;
    while (!this.stopping) {
      const free = batchSize - this.target.held - this.reserved;
      const busy = this.target.queued > 0 || this.claims.size > 0;
      // While deliveries are queued or a claim is on its way, wait until half the batch is free:
      // claims stay big. Outside a backlog, one claim at a time (its outcome decides what next).
      if (free <= 0 || (busy && free < half) || this.claims.size >= maxClaimsInFlight || (this.claims.size > 0 && !this.backlog)) {
        await this.sleep(Infinity);
        // Handlers that finish in the same tick settle first, so one claim refills all their
        // slots (claiming one slot per settled handler costs a round trip and a commit each).
        await new Promise((resolve) => setImmediate(resolve));
        continue;
      }
      this.woken = false;
      if (this.backlog) {
        // Pipelined: half a batch each, so the next claim can go out before this one is back.
        void this.claim(Math.min(free, half));
        continue;
      }
      const outcome = await this.claim(free, !this.parked);
      if ('error' in outcome) {
        const { error } = outcome;
        if (this.stopping) break;
        failures++;
        const known = fromDatabaseError(error);
        if (known instanceof CrierError && known.code === 'CRIER_UNKNOWN_SUBSCRIPTION') {
          const message = `subscription "${name}" was removed from the database; this worker stops claiming for it`;
          this.logger.error({ subscription: name }, message);
          this.report({ error, message, subscription: name });
          break;
        }
        if (failures === 1) {
          const message = `subscription "${name}": claim failed (${errorMessage(error)}); retrying with backoff`;
          this.logger.warn({ subscription: name, error: errorMessage(error) }, message);
          this.report({ error, message, subscription: name });
        }
        // Not cut short by wake-ups: a reconnecting listener wakes every loop, and a dead
        // database must not be hammered. At most a second, though: claims resume within a second
        // of the server being back (one claim a second per subscription is no load).
        await this.sleep(Math.min(1000, 50 * 2 ** Math.min(failures, 7)), { wakeable: false });
        continue;
      }
      if (failures > 0) this.logger.info({ subscription: name, failures }, `subscription "${name}": claiming again after ${failures} failed attempts`);
      failures = 0;
      await this.afterClaim(outcome, free);
    }
  }

  /** What follows a claim that succeeded: claim again at once, re-check, or idle. */
  private async afterClaim(outcome: Exclude<ClaimOutcome, { error: unknown }>, free: number): Promise<void> {
    if (outcome.claimed >= free) {
      if (this.parked) await this.unpark();
    } else if (outcome.claimed > 0) {
      // Work is trickling in: claim again at once. While this loop is awake and unparked,
      // producers skip the NOTIFY (it has no parked row).
    } else if (outcome.parked || !this.parked) {
      // Just parked (or a NOTIFY came meanwhile): claim again, the re-check.
    } else if (outcome.running !== null && (this.recheck?.delayMs ?? 0) * 2 < this.settings.pollIntervalMs) {
      const delayMs = this.recheck ? 2 * this.recheck.delayMs : firstRecheckMs;
      this.recheck = { running: outcome.running, delayMs };
      await this.sleep(outcome.nextDueIn === null ? delayMs : Math.max(0, Math.min(delayMs, Math.ceil(outcome.nextDueIn))));
      return;
    } else {
      // Nothing running that could commit unseen, or re-checks a poll interval apart: the
      // worker's poll re-checks from here (crier.worker_poll reports a due delivery).
      await this.idle(outcome.nextDueIn);
    }
    this.recheck = undefined;
  }

  /**
   * Claims up to `limit` deliveries, taking the completions queued so far along, and hands what it
   * gets to the target. A full claim starts (or keeps) the backlog; anything less, or a failure, ends it.
   * `park` (given for the claims the loop awaits): if nothing is claimed, park in the same round
   * trip; either way an empty claim reports when the next delivery is due, and a re-check whether
   * producers may still be committing unseen events (the transactions running).
   */
  private claim(limit: number, park?: boolean): Promise<ClaimOutcome> {
    const done = this.acks.takeCompletions();
    // The loop awaits a claim it sends outside a backlog; a pipelined claim must wake it when it is
    // back. (Waking for the awaited kind would leave a wake-up token that ends the next idle sleep
    // at once: a spinning loop.)
    const pipelined = this.backlog;
    this.reserved += limit;
    const finish = () => {
      this.reserved -= limit;
      this.claims.delete(claim);
      if (pipelined) this.wake();
    };
    const { name } = this.settings;
    const notifications = this.notifications;
    const request =
      park === undefined
        ? this.protocol.claim(name, limit, done).then((deliveries) => ({ deliveries, parked: false, nextDueIn: null, running: null }))
        : this.protocol.claimOrIdle(name, limit, done, park, park ? null : (this.recheck?.running ?? null));
    const claim: Promise<ClaimOutcome> = request.then(
      ({ deliveries, parked, nextDueIn, running }) => {
        finish();
        this.backlog = deliveries.length >= limit;
        // A NOTIFY since the claim went out may have deleted the row the park wrote: producers
        // would then skip us, so this loop does not count as parked.
        if (parked && this.notifications === notifications) this.parked = true;
        this.target.accept(deliveries);
        return { claimed: deliveries.length, parked, nextDueIn, running };
      },
      (error: unknown) => {
        finish();
        this.acks.restoreCompletions(done);
        this.backlog = false;
        return { error };
      },
    );
    this.claims.add(claim);
    return claim;
  }

  private async unpark(): Promise<void> {
    try {
      await this.protocol.unpark([this.settings.name]);
      this.parked = false;
    } catch (error) {
      this.logger.warn({ subscription: this.settings.name, error: errorMessage(error) }, `subscription "${this.settings.name}": could not unpark (${errorMessage(error)})`);
      await this.sleep(200, { wakeable: false });
    }
  }

  /** Sleeps until the next delivery is due (`dueIn` ms) or a wake-up (a NOTIFY, the worker's poll). */
  private async idle(dueIn: number | null): Promise<void> {
    this.idling = true;
    try {
      // A far-off due time just re-arms (setTimeout fires at once past 2^31 - 1 ms).
      await this.sleep(dueIn === null ? Infinity : Math.min(maxTimerDelayMs, Math.max(0, Math.ceil(dueIn))));
    } finally {
      this.idling = false;
    }
  }

  /**
   * Sleeps until `ms` pass, stop() is called or (when wakeable) a wake-up arrives; returns true when
   * cut short. A wake-up that arrived before the sleep ends it at once and is used up, so a loop
   * that re-checks and sleeps again really waits (a wake-up left standing would spin it without
   * ever yielding to timers or I/O).
   */
  private sleep(ms: number, { wakeable = true } = {}): Promise<boolean> {
    if (this.stopping) return Promise.resolve(true);
    if (wakeable && this.woken) {
      this.woken = false;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const finish = (cutShort: boolean) => {
        clearTimeout(timer);
        this.sleeper = undefined;
        if (cutShort && wakeable) this.woken = false;
        resolve(cutShort);
      };
      const timer = ms === Infinity ? undefined : setTimeout(() => finish(false), ms);
      this.sleeper = { wakeable, interrupt: () => finish(true) };
    });
  }
}
