// The worker's database client, held where it can be replaced. Every round trip the worker makes
// (claim, ack, heartbeat, rescue, park, release, the LISTEN probe) goes through run(), under a deadline
// (queryTimeout): a connection that stays open but says nothing (a silent network, a NAT or load
// balancer that lost the flow) would otherwise hold the query for ever.
//
// A client is ended and replaced by a fresh one, never reused, when
//   - a query misses its deadline (postgres.js 4.x is also told to cancel it: .signal());
//   - a query fails with CONNECT_TIMEOUT (postgres.js 3.x: a pool slot whose connection died with a
//     write pending never flushes its StartupMessage again and fails this way for ever);
//   - postgres.js 3.x only: a query fails because its connection closed under it (a restart, a
//     terminated backend): that is how a 3.x slot gets poisoned, so the client goes before it can
//     stall the worker when the server is back.
//   - the client given as `connection` (the caller's) fails with any connection error: crier goes on
//     with a client of its own opened from the same options, with its own reconnect settings.
// A replacement is logged with its reason, once per outage (the replacements that follow while
// nothing answers are counted, and reported with the first answer); queries already on the old
// client keep their outcome (it is given `graceMs` to finish them, then destroyed).
import type postgres from 'postgres';
import { driverCancelsQueries } from '../connection.ts';
import { CrierError, isConnectionError } from '../errors.ts';
import type { Logger } from '../logger.ts';

export interface ReplaceableClientOptions {
  /** Deadline of each round trip through run(), in ms; 0: none. */
  queryTimeoutMs: number;
  /** Opens a fresh client: from the worker's URL, or from the options of the client it was given. */
  open: () => postgres.Sql<any>;
  /** Whether the first client is the worker's to end (false: the caller's own client). */
  ownsFirst: boolean;
  /** How long queries already on a replaced client may still take before it is destroyed. */
  graceMs: number;
  logger: Logger;
  /** After each replacement, with why: work may have been missed meanwhile (e.g. wake the claim loops). */
  onReplaced?: (reason: string) => void;
}

export type Pending<T> = PromiseLike<T> & { signal?: (signal: AbortSignal) => unknown };

/** Connection failures after which a postgres.js 3.x pool slot may be poisoned. */
const lostUnderQuery = new Set(['CONNECTION_CLOSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', '57P01', '57P02', '08006', '08003']);

export class ReplaceableClient {
  private client: postgres.Sql<any>;
  private owned: boolean;
  private closed = false;
  /** Clients replaced since a round trip last succeeded: logged once per streak, not each time. */
  private streak = 0;

  /** Without `options`: a fixed client, no deadline, never replaced (tests, crier/testing). */
  constructor(
    first: postgres.Sql<any>,
    private readonly options?: ReplaceableClientOptions,
  ) {
    this.client = first;
    this.owned = options?.ownsFirst ?? false;
  }

  /** The deadline of each round trip, in ms (0: none). */
  get queryTimeoutMs(): number {
    return this.options?.queryTimeoutMs ?? 0;
  }

  /** The client to use now. Hold on to it no longer than one piece of work: it may be replaced. */
  get current(): postgres.Sql<any> {
    return this.client;
  }

  /**
   * Runs one round trip on the current client under the deadline. `what` names it in errors and
   * logs ("claim", "heartbeat"). A failure that condemns the client replaces it, then rejects.
   */
  run<T>(what: string, query: (sql: postgres.Sql<any>) => Pending<T>): Promise<T> {
    const client = this.client;
    return this.race(what, query(client), client);
  }

  /**
   * A round trip on a connection that is not this client's to replace (a transactional handler's
   * transaction, which carries its own ack): the deadline only.
   */
  within<T>(what: string, pending: Pending<T>): Promise<T> {
    return this.race(what, pending, undefined);
  }

  private race<T>(what: string, pending: Pending<T>, client: postgres.Sql<any> | undefined): Promise<T> {
    const ms = this.options?.queryTimeoutMs ?? 0;
    return withDeadline(what, ms, pending, driverCancelsQueries(this.client)).then((value) => {
      if (this.streak > 0 && client === this.client) {
        this.options?.logger.info({ replacements: this.streak }, `database answering again after ${this.streak} client replacement${this.streak > 1 ? 's' : ''}`);
        this.streak = 0;
      }
      return value;
    }, (error: unknown) => {
      if (client && error instanceof DeadlineMissed) this.replace(client, `${what} got no answer within ${ms}ms`);
      return this.failed(client, error);
    });
  }

  private async failed(client: postgres.Sql<any> | undefined, error: unknown): Promise<never> {
    const reason = client && replacementReason(client, error, this.owned);
    if (client && reason) this.replace(client, reason);
    throw error;
  }

  /** Ends `client` and puts a fresh one in its place, unless that was done already (or closed). */
  replace(client: postgres.Sql<any>, reason: string): void {
    if (this.closed || client !== this.client || !this.options) return;
    const { open, graceMs, logger, onReplaced } = this.options;
    this.client = open();
    const wasOwned = this.owned;
    this.owned = true;
    // While the database stays out of reach each new client fails the same way: say it once.
    if (this.streak++ === 0) {
      logger.warn({ reason }, `database client replaced: ${reason}; the old client is ended, not reused${wasOwned ? '' : ' (it was the one you passed: crier no longer uses it but leaves it open)'}`);
    }
    if (wasOwned) client.end({ timeout: graceMs / 1000 }).catch(() => {});
    onReplaced?.(reason);
  }

  /** Ends the current client if it is the worker's own. */
  async end(timeoutSeconds: number): Promise<void> {
    this.closed = true;
    if (this.owned) await this.client.end({ timeout: timeoutSeconds });
  }
}

/** A round trip that got no answer within its deadline. */
export class DeadlineMissed extends CrierError {
  constructor(what: string, ms: number) {
    super('CRIER_CONNECTION', `${what}: no answer from Postgres within ${ms}ms (queryTimeout)`);
  }
}

/**
 * `pending`, or a DeadlineMissed rejection after `ms` (0: no deadline). `cancel`: the driver is
 * postgres.js 4.x, which cancels a query whose signal aborts (the per-query form of its
 * query_timeout; set on the whole client, that would also cut transactional handlers' own queries).
 */
export function withDeadline<T>(what: string, ms: number, pending: Pending<T>, cancel: boolean): Promise<T> {
  if (ms <= 0) return Promise.resolve(pending);
  const controller = new AbortController();
  if (cancel && typeof pending.signal === 'function') pending.signal(controller.signal);
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      const error = new DeadlineMissed(what, ms);
      reject(error);
      controller.abort(error);
    }, ms);
    pending.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/** Why a failed query condemns its client, or undefined when it does not. */
function replacementReason(client: postgres.Sql<any>, error: unknown, owned: boolean): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return undefined;
  // The caller's client has the caller's reconnect settings (postgres.js's default backoff reaches
  // 20 s between attempts): crier's own reconnects within a second once the server is back.
  if (!owned && isConnectionError(error)) return `the client passed as \`connection\` lost its connection (${code})`;
  const message = (error as Error).message;
  if (code === 'CONNECT_TIMEOUT') return `a connection attempt timed out (CONNECT_TIMEOUT: ${message})`;
  if (code === 'QUERY_TIMEOUT' || code === 'CANCEL_UNANSWERED') return `a query timed out in the driver (${code})`;
  if (!driverCancelsQueries(client) && lostUnderQuery.has(code)) {
    return `a connection closed under a query (${code}), which can leave a postgres.js 3.x pool slot unable to reconnect`;
  }
  return undefined;
}
