// One LISTEN connection per worker process. NOTIFY is only a hint (the table is the truth), so this
// module's job is small: deliver wake-ups, and after any lost connection reconnect with backoff,
// LISTEN again and report it, so the worker can catch up on what it may have missed by polling.
// It also checks that LISTEN really delivers: through a transaction-mode pooler (PgBouncer) the
// LISTEN succeeds but notifications never come back, so after each LISTEN it sends itself a probe
// on a private channel and, if that never arrives, says once that the worker is only polling.
// A LISTEN connection that went quiet (a silent network keeps the socket open) would wait for
// notifications for ever, so it proves it is alive by a round trip on itself every
// healthIntervalMs, under the deadline, and is replaced when it does not answer.
import { randomBytes } from 'node:crypto';
import type postgres from 'postgres';
import { driverCancelsQueries, openClient, type Connection } from '../connection.ts';
import { DeadlineMissed, withDeadline } from './client.ts';
import { describeConnectionError } from '../errors.ts';
import { errorMessage, type Logger } from '../logger.ts';

export interface ListenerEvents {
  /** A NOTIFY arrived: the subscription names it carries, or '*' for all. */
  onWake(subscriptions: string[] | '*'): void;
  /** LISTEN is (re-)established after a gap: notifications may have been lost. */
  onReconnect(): void;
  /** LISTEN was lost, or found deaf (reported once per outage, as it is logged). */
  onTrouble?(trouble: { error: unknown; message: string }): void;
}

export interface ListenerOptions {
  /** Sends a NOTIFY over another connection (the worker's pool), to probe this one. */
  notify(channel: string, payload: string): Promise<unknown>;
  /** How often the worker polls anyway; named in the warning when LISTEN is deaf. */
  pollIntervalMs: number;
  /** How long after the probe's NOTIFY committed it may take to arrive (default 3s). */
  probeTimeoutMs?: number;
  /** Deadline of LISTEN and of each health check (default 10s). */
  queryTimeoutMs?: number;
  /** How often the connection proves it is alive with a round trip on itself (default 10s). */
  healthIntervalMs?: number;
}

export class Listener {
  private client: postgres.Sql | undefined;
  private closed = false;
  private connected = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  // Private to this listener, so no other worker hears the probe and no loop wakes for it.
  private readonly probeChannel = `crier_probe_${randomBytes(8).toString('hex')}`;
  private probeToken: string | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private healthTimer: NodeJS.Timeout | undefined;
  private deaf = false;
  private warnedDeaf = false;

  constructor(
    private readonly connection: Connection,
    private readonly channel: string,
    private readonly events: ListenerEvents,
    private readonly logger: Logger,
    private readonly options: ListenerOptions,
  ) {}

  async start(): Promise<void> {
    await this.connect();
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const deadlineMs = this.options.queryTimeoutMs ?? 10_000;
    const client: postgres.Sql = openClient(this.connection, {
      max: 1,
      idle_timeout: 0,
      max_lifetime: null,
      fetch_types: false,
      connect_timeout: Math.max(1, Math.ceil(deadlineMs / 1000)),
      onnotify: (channel, payload) => {
        if (channel === this.probeChannel) return this.probeArrived(payload);
        this.events.onWake(payload === '*' || payload === '' ? '*' : payload.split(' '));
      },
      onclose: () => this.lost(client),
    });
    this.client = client;
    try {
      // One simple query: both LISTENs land on the same server connection, even through a pooler.
      const listen = client.unsafe(`LISTEN "${this.channel.replace(/"/g, '""')}"; LISTEN "${this.probeChannel}"`);
      await withDeadline('LISTEN', deadlineMs, listen, driverCancelsQueries(client));
    } catch (error) {
      this.lost(client, error);
      if (this.failures === 1) throw error;
      return;
    }
    const wasDisconnected = this.failures > 0;
    this.connected = true;
    this.failures = 0;
    if (wasDisconnected) {
      this.logger.info({ failedAttempts: this.failures }, 'LISTEN connection restored; catching up');
      this.events.onReconnect();
    }
    this.probe(client);
    this.checkHealth(client);
  }

  /** Every healthIntervalMs, a round trip on the LISTEN connection itself; no answer: replaced. */
  private checkHealth(client: postgres.Sql): void {
    const deadlineMs = this.options.queryTimeoutMs ?? 10_000;
    clearTimeout(this.healthTimer);
    this.healthTimer = setTimeout(() => {
      if (this.closed || client !== this.client) return;
      // max: 1, so this goes through the connection that LISTENs.
      withDeadline('LISTEN health check', deadlineMs, client.unsafe('SELECT 1'), driverCancelsQueries(client)).then(
        () => this.checkHealth(client),
        (error: unknown) => this.lost(client, error),
      );
    }, this.options.healthIntervalMs ?? 10_000);
  }

  /** Sends this connection a NOTIFY from another one; silence means LISTEN is deaf here. */
  private probe(client: postgres.Sql): void {
    const token = randomBytes(8).toString('hex');
    this.probeToken = token;
    clearTimeout(this.probeTimer);
    this.options.notify(this.probeChannel, token).then(
      () => {
        if (this.closed || client !== this.client || this.probeToken !== token) return;
        this.probeTimer = setTimeout(() => {
          if (this.closed || client !== this.client || this.probeToken !== token) return;
          this.becameDeaf();
        }, this.options.probeTimeoutMs ?? 3000);
      },
      // The pool is unwell: the claim loops report that; no verdict on LISTEN.
      () => {},
    );
  }

  private probeArrived(payload: string): void {
    if (payload !== this.probeToken) return;
    this.probeToken = undefined;
    clearTimeout(this.probeTimer);
    // Only slow (a loaded server), not deaf: take the warning back.
    if (this.deaf) {
      this.deaf = false;
      this.logger.info('LISTEN works on this connection after all: the probe NOTIFY arrived late');
    }
  }

  private becameDeaf(): void {
    this.deaf = true;
    if (this.warnedDeaf) return; // once per worker, not once per reconnect
    this.warnedDeaf = true;
    const message =
      `LISTEN does not work on this connection: a probe NOTIFY never arrived (is it a transaction-mode pooler such as PgBouncer?). ` +
      `The worker falls back to polling every ${this.options.pollIntervalMs}ms. ` +
      `For prompt wake-ups give the worker a session connection for LISTEN: listenConnection: a direct (or session-pooled) database URL.`;
    this.logger.warn({ pollIntervalMs: this.options.pollIntervalMs }, message);
    this.events.onTrouble?.({ error: new Error('LISTEN probe NOTIFY never arrived'), message });
  }

  private lost(client: postgres.Sql, error?: unknown): void {
    if (this.closed || client !== this.client) return;
    this.client = undefined;
    if (this.connected || this.failures === 0) {
      const why = error instanceof DeadlineMissed ? error.message : error ? describeConnectionError(error) : 'closed by the server';
      const message = `LISTEN connection lost (${why}); replacing it, polling meanwhile`;
      this.logger.warn({ error: why }, message);
      this.events.onTrouble?.({ error: error ?? new Error(why), message });
    }
    this.connected = false;
    this.failures++;
    client.end({ timeout: 0 }).catch(() => {});
    const delay = Math.min(5000, 100 * 2 ** Math.min(this.failures - 1, 6));
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.connect().catch((e) => this.logger.warn({ error: errorMessage(e) }, `LISTEN reconnect failed: ${errorMessage(e)}`));
    }, delay);
    // Until LISTEN is back, the worker must not sleep on a wake-up that cannot come.
    this.events.onReconnect();
  }

  /** LISTEN is up and (as far as the probe knows) delivers. */
  get isListening(): boolean {
    return this.connected && !this.deaf;
  }

  async stop(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.probeTimer);
    clearTimeout(this.healthTimer);
    const client = this.client;
    this.client = undefined;
    await client?.end({ timeout: 1 });
  }
}
