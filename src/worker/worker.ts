// A worker process's runtime: declares its subscriptions (creates the missing ones, adopts the
// stored ones), runs one claim loop per subscription over one small shared pool (maxConnections,
// LISTEN included), one LISTEN connection for wake-ups, heartbeats for the leases it holds, one
// poll for all its idle subscriptions that also rescues leases others let expire, and a graceful
// shutdown. All state that matters lives in Postgres rows; what is kept
// here (in-flight handlers, queued acks) is rebuilt from the rows if this process dies.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { openClient, type Connection } from '../connection.ts';
import { toMilliseconds, type Duration } from '../duration.ts';
import { CrierError, fromDatabaseError } from '../errors.ts';
import { combineInstrumentation, instrumentHandler, type Instrumentation } from '../instrumentation.ts';
import { errorMessage, toLogger, type Logger } from '../logger.ts';
import { checkSchemaName, defaultSchema } from '../schema-name.ts';
import { version } from '../version.ts';
import {
  declareSubscriptions, retrySchedule, toSubscriptionRow, type DeclaredSubscription, type SubscriptionSpec,
} from '../subscriptions.ts';
import { AckBuffer } from './acks.ts';
import { WorkerEmitter, type WorkerEvents, type WorkerEventName } from './events.ts';
import { ReplaceableClient } from './client.ts';
import type { Handler } from './event.ts';
import { Listener } from './listener.ts';
import { Protocol, type ClaimedDelivery } from './protocol.ts';
import { ClaimScheduler } from './claim-scheduler.ts';
import { HandlerRunner, type InFlight } from './handler-runner.ts';

export interface SubscriptionDefinition<P = any, T extends string = string> extends SubscriptionSpec {
  handler: Handler<P, T>;
  /** Handlers of this subscription running at once in this process (default 10). */
  concurrency?: number;
  /**
   * Deliveries claimed in one round trip and held at once: running plus waiting their turn
   * (default: concurrency). Raise it for many short handlers (e.g. 500): fewer round trips and
   * commits per event. Held deliveries keep their lease (heartbeats renew it), so with slow
   * handlers a big batch makes other processes of the subscription wait for this one.
   */
  batchSize?: number;
  /** A handler still running after this long fails its attempt and its signal aborts (default 5m). */
  timeout?: Duration;
  /**
   * Run the handler in a transaction (ctx.tx) that also carries the ack: its writes commit with
   * the ack or roll back with a failure (exactly-once effects in this database). Each running
   * handler holds a connection: a pool passed as `connection` needs `concurrency` extra slots.
   */
  transactional?: boolean;
}

export interface WorkerOptions {
  /** A connection URL, or a postgres.js client whose pool the worker shares. */
  connection: Connection;
  /**
   * The connection for LISTEN only (default: `connection`). LISTEN needs a session of its own: when
   * `connection` goes through a transaction-mode pooler (PgBouncer), give a direct or
   * session-pooled URL here, or the worker can only poll (it warns when it finds that out).
   */
  listenConnection?: Connection;
  schema?: string;
  subscriptions: readonly SubscriptionDefinition[];
  /** Identifies this worker in crier.deliveries.worker (default host:pid:random). */
  workerId?: string;
  /**
   * The worker's poll (default 2s): one round trip for all its subscriptions, idle or busy, that
   * rescues deliveries whose lease expired and, for the idle ones, finds work a lost NOTIFY did not
   * announce (the safety net: NOTIFY is a hint).
   */
  pollInterval?: Duration;
  /**
   * Database connections this worker opens for itself, its LISTEN connection included (default 3,
   * at least 2): LISTEN, and `maxConnections - 1` for the round trips of all its subscriptions
   * (claims, acks, heartbeats, polls), which share them whatever their number. Transactional
   * subscriptions add their `concurrency` on top: each running handler holds a connection for its
   * transaction, and those slots are its own, so handlers never make the round trips wait (nor
   * the heartbeats that keep their leases). Applies to clients crier opens (a URL as `connection`,
   * and replacements); a client passed as `connection` keeps its own pool size.
   */
  maxConnections?: number;
  /**
   * Deadline of every round trip the worker makes (claim, ack, heartbeat, rescue, park, the LISTEN
   * health check; default 10s). A client that misses it is ended and replaced by a fresh one, as is
   * one whose connection attempt times out (CONNECT_TIMEOUT): a connection that went quiet (a silent
   * network, a NAT that lost the flow) is found and left within this time. See docs/reliability.md.
   */
  queryTimeout?: Duration;
  /**
   * How often the LISTEN connection proves it is alive by a round trip on itself (default 10s).
   * One that does not answer within queryTimeout is replaced, and the worker catches up by claiming.
   */
  listenHealthInterval?: Duration;
  /**
   * How often the worker renews the leases it holds and tells crier.workers it is alive (default: a
   * third of the shortest lease of its subscriptions). crier.workers calls a worker stale after three
   * missed beats. Must be shorter than that lease.
   */
  heartbeatInterval?: Duration;
  /** How long stop() waits for running handlers before releasing their deliveries (default 10s). */
  shutdownTimeout?: Duration;
  /** Stop gracefully on SIGINT/SIGTERM; a second signal exits at once (default true). */
  handleSignals?: boolean;
  logger?: Logger | false;
  /**
   * Tracing and the like: each handler attempt runs inside it, and ctx.publish adds its headers
   * (e.g. `openTelemetry()` from crier/opentelemetry; docs/observability.md). Default: the
   * crier's own, when the worker comes from crier.worker(...).
   */
  instrumentation?: Instrumentation | Instrumentation[];
}

export class Worker {
  readonly id: string;
  private readonly schema: string;
  private readonly logger: Logger;
  private readonly events: WorkerEmitter;
  /** The worker's client, under deadlines, replaced when it fails (see client.ts). */
  private readonly client: ReplaceableClient;
  private readonly protocol: Protocol;
  private readonly acks: AckBuffer;
  /** Per subscription: the scheduler that decides when to claim, and the runner of its handlers. */
  private readonly loops: { scheduler: ClaimScheduler; runner: HandlerRunner }[];
  /** Wraps each handler attempt and adds headers to ctx.publish (undefined: none given). */
  private readonly instrumentation: Instrumentation | undefined;
  private readonly listener: Listener;
  private readonly pollIntervalMs: number;
  private readonly shutdownTimeoutMs: number;
  /** The poll on its way, if any: polls never overlap. */
  private polling: Promise<void> | undefined;
  /** A third of the shortest lease of its subscriptions as stored (set again once they are declared). */
  private heartbeatMs: number;
  private timers: NodeJS.Timeout[] = [];
  private state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  private stopped: Promise<void> | undefined;
  private removeSignalHandlers: (() => void) | undefined;

  constructor(private readonly options: WorkerOptions) {
    this.schema = checkSchemaName(options.schema ?? defaultSchema);
    this.logger = toLogger(options.logger);
    this.events = new WorkerEmitter(this.logger);
    this.id = options.workerId ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    this.pollIntervalMs = toMilliseconds(options.pollInterval ?? 2000, 'pollInterval');
    this.shutdownTimeoutMs = toMilliseconds(options.shutdownTimeout ?? 10_000, 'shutdownTimeout');
    const queryTimeoutMs = toMilliseconds(options.queryTimeout ?? 10_000, 'queryTimeout');
    const listenHealthMs = toMilliseconds(options.listenHealthInterval ?? 10_000, 'listenHealthInterval');
    if (queryTimeoutMs <= 0 || listenHealthMs <= 0) {
      throw new CrierError('CRIER_INVALID_OPTION', 'queryTimeout and listenHealthInterval must be longer than 0');
    }
    if (options.subscriptions.length === 0) {
      throw new CrierError('CRIER_INVALID_OPTION', 'a worker needs at least one subscription');
    }
    const names = options.subscriptions.map((s) => s.name);
    const twice = names.find((n, i) => names.indexOf(n) !== i);
    if (twice) throw new CrierError('CRIER_INVALID_OPTION', `subscription "${twice}" is given twice`);
    const rows = options.subscriptions.map(toSubscriptionRow);
    this.instrumentation = combineInstrumentation(options.instrumentation);
    this.heartbeatMs = this.heartbeatFor(rows.map((r) => r.leaseMs));

    const { connection } = options;
    const maxConnections = options.maxConnections ?? 3;
    if (!Number.isInteger(maxConnections) || maxConnections < 2) {
      throw new CrierError('CRIER_INVALID_OPTION', `maxConnections must be an integer >= 2 (LISTEN and at least one for the round trips), got ${String(options.maxConnections)}`);
    }
    // Transactional handlers each hold a connection while they run: slots of their own on top of
    // the round trips', so a busy handler never holds up an ack, a claim or a heartbeat.
    const heldByHandlers = options.subscriptions.reduce((n, s) => n + (s.transactional ? (s.concurrency ?? 10) : 0), 0);
    const open = () =>
      openClient(connection, {
        // A replacement for the caller's client keeps its pool size.
        ...(typeof connection === 'string' ? { max: maxConnections - 1 + heldByHandlers } : {}),
        connect_timeout: Math.max(1, Math.ceil(queryTimeoutMs / 1000)),
        // Reconnect within a second once the server is back: postgres.js's default backoff grows
        // to 20 s after a few failed attempts (a restart), and claims would wait for it.
        backoff: (attempts: number) => Math.min(1, 0.05 * 2 ** attempts),
        // crier sends arrays as text and reads none. And postgres.js 3.4 fetches array types on
        // each new connection without handling that query's failure: a connection killed right
        // then (pg_terminate_backend, restart) becomes an unhandled rejection that ends the process.
        fetch_types: false,
      });
    this.client = new ReplaceableClient(typeof connection === 'string' ? open() : connection, {
      queryTimeoutMs,
      open,
      ownsFirst: typeof connection === 'string',
      graceMs: queryTimeoutMs,
      logger: this.logger,
      onReplaced: (reason) => {
        this.events.emit('error', { error: new CrierError('CRIER_CONNECTION', reason), message: `database client replaced: ${reason}` });
        // Work may have been missed, or failed, on the old client: claim now.
        this.loops.forEach((loop) => loop.scheduler.wake());
      },
    });
    // Claims beyond the round-trip connections wait and go together, in one round trip.
    this.protocol = new Protocol(this.client, this.schema, this.id, maxConnections - 1);
    this.acks = new AckBuffer(this.protocol, this.logger, (ids) => this.onAckRefused(ids));
    this.loops = options.subscriptions.map((definition, i) => this.openSubscription(definition, rows[i]!.maxAttempts));
    this.listener = new Listener(
      options.listenConnection ?? options.connection,
      this.schema,
      {
        onWake: (names) => {
          for (const { scheduler } of this.loops) if (names === '*' || names.includes(scheduler.settings.name)) scheduler.notified();
        },
        onReconnect: () => this.loops.forEach((loop) => loop.scheduler.wake()),
        onTrouble: (trouble) => this.events.emit('error', trouble),
      },
      this.logger,
      {
        notify: (channel, payload) => this.client.run('LISTEN probe', (sql) => sql.unsafe('SELECT pg_notify($1, $2)', [channel, payload])),
        pollIntervalMs: this.pollIntervalMs,
        queryTimeoutMs,
        healthIntervalMs: listenHealthMs,
      },
    );
  }

  /** The scheduler and the runner of one subscription, joined by callbacks (neither imports the other). */
  private openSubscription(definition: SubscriptionDefinition, maxAttempts: number): { scheduler: ClaimScheduler; runner: HandlerRunner } {
    const concurrency = definition.concurrency ?? 10;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new CrierError('CRIER_INVALID_OPTION', `subscription "${definition.name}": concurrency must be an integer >= 1`);
    }
    const batchSize = definition.batchSize ?? concurrency;
    if (!Number.isInteger(batchSize) || batchSize < concurrency) {
      throw new CrierError('CRIER_INVALID_OPTION', `subscription "${definition.name}": batchSize must be an integer >= concurrency (${concurrency})`);
    }
    // Joined by callbacks: the scheduler hands claims to the runner, the runner says when a
    // slot frees up and when a retry it wrote falls due.
    const runner: HandlerRunner = new HandlerRunner(
      {
        name: definition.name,
        handler: instrumentHandler(definition.handler, this.instrumentation),
        instrumentation: this.instrumentation,
        concurrency,
        maxAttempts,
        timeoutMs: toMilliseconds(definition.timeout ?? 300_000, `subscription "${definition.name}" timeout`),
        transactional: definition.transactional ?? false,
        retrySchedule: retrySchedule(definition),
      },
      this.protocol,
      this.acks,
      this.logger,
      this.events,
      { slotFreed: () => scheduler.wake(), retryDue: (inMs: number) => scheduler.retryDue(inMs) },
    );
    const scheduler = new ClaimScheduler(
      { name: definition.name, batchSize, pollIntervalMs: this.pollIntervalMs },
      this.protocol,
      this.acks,
      this.logger,
      runner,
      (trouble) => this.events.emit('error', trouble),
    );
    return { scheduler, runner };
  }

  /**
   * Listens to what happens to handler attempts ('handled', 'retry', 'dead') and to worker-level
   * trouble ('error'); returns the function that stops listening. A listener that throws is logged
   * (once) and never breaks the worker. See docs/observability.md.
   */
  on<K extends WorkerEventName>(name: K, listener: WorkerEvents[K]): () => void {
    return this.events.on(name, listener);
  }

  off<K extends WorkerEventName>(name: K, listener: WorkerEvents[K]): void {
    this.events.off(name, listener);
  }

  /** Declares the subscriptions, starts listening and claiming. Rejects with a clear error if the database is unusable. */
  async start(): Promise<this> {
    if (this.state !== 'new') throw new Error('crier: a worker can be started once');
    this.state = 'running';
    let registered = false;
    try {
      this.adopt(await this.client.run('declaring subscriptions', (sql) => declareSubscriptions(sql, this.schema, this.options.subscriptions)));
      await this.protocol.register({
        host: hostname(), pid: process.pid, version, heartbeatMs: this.heartbeatMs,
        subscriptions: this.loops.map(({ runner }) => runner.settings.name),
      });
      registered = true;
      await this.listener.start();
    } catch (error) {
      if (registered) await this.protocol.stopped().catch(() => {});
      await this.close();
      this.state = 'stopped';
      throw fromDatabaseError(error);
    }
    for (const loop of this.loops) loop.scheduler.start();
    this.timers.push(setInterval(() => void this.heartbeat(), this.heartbeatMs));
    this.timers.push(setInterval(() => void this.poll(), this.pollIntervalMs));
    void this.poll();
    if (this.options.handleSignals ?? true) this.installSignalHandlers();
    this.logger.info(
      { workerId: this.id, subscriptions: this.loops.map(({ runner }) => runner.settings.name) },
      `worker ${this.id} started: ${this.loops.map(({ runner }) => `${runner.settings.name} (x${runner.settings.concurrency})`).join(', ')}`,
    );
    return this;
  }

  /**
   * A subscription already in the database (declared ahead by an operator, or by an earlier worker)
   * runs as stored: the code's topics and policies do not change it. Say so when they differ.
   */
  private adopt(declared: DeclaredSubscription[]): void {
    for (const [i, { stored, differences }] of declared.entries()) {
      if (differences.length === 0) continue;
      const show = (value: unknown) => JSON.stringify(value);
      this.logger.warn(
        { subscription: stored.name },
        `subscription "${stored.name}" is declared in the database with other settings than this worker's; it runs as declared: ` +
          differences.map((d) => `${d.setting} ${show(d.stored)} (declared) vs ${show(d.code)} (this worker)`).join(', ') +
          `. To change it, an operator runs "crier subscriptions create ${stored.name} --topics ..." or SELECT crier.create_subscription(...)`,
      );
      this.loops[i]!.runner.adoptMaxAttempts(stored.maxAttempts);
    }
    this.heartbeatMs = this.heartbeatFor(declared.map((d) => d.stored.leaseMs));
  }

  /** heartbeatInterval, or a third of the shortest lease. */
  private heartbeatFor(leasesMs: number[]): number {
    const shortest = Math.min(...leasesMs);
    if (this.options.heartbeatInterval === undefined) return Math.max(50, shortest / 3);
    const ms = toMilliseconds(this.options.heartbeatInterval, 'heartbeatInterval');
    if (ms <= 0 || ms >= shortest) {
      throw new CrierError('CRIER_INVALID_OPTION', `heartbeatInterval must be longer than 0 and shorter than the shortest lease (${shortest}ms)`);
    }
    return ms;
  }

  /**
   * Graceful shutdown: stop claiming, let running handlers finish within shutdownTimeout, write
   * their acks, hand back what did not finish (without counting the attempt), close connections.
   */
  stop(): Promise<void> {
    this.stopped ??= this.shutdown();
    return this.stopped;
  }

  private async shutdown(): Promise<void> {
    if (this.state === 'new' || this.state === 'stopped') {
      this.state = 'stopped';
      await this.close();
      return;
    }
    this.state = 'stopping';
    this.removeSignalHandlers?.();
    const deadline = Date.now() + this.shutdownTimeoutMs;
    const unstarted = await this.stopClaiming();

    const running = () => this.inFlight();
    if (running().length > 0) {
      this.logger.info({ workerId: this.id, running: running().length }, `waiting up to ${this.shutdownTimeoutMs}ms for ${running().length} running handlers`);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(running().map((entry) => entry.settled())),
        new Promise((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now())))),
      ]);
      clearTimeout(timer); // else it keeps the process alive until the deadline
    }
    const unfinished = running();
    for (const entry of unfinished) {
      entry.lost = true; // whatever it does now, it is not ours to ack
      entry.abort(new Error('worker shutting down'));
    }
    await this.acks.drain(Date.now() + 5000);
    const handBack = [...unfinished.map((e) => e.delivery), ...unstarted];
    if (handBack.length > 0) {
      try {
        const released = await this.protocol.release(
          handBack.map((d) => d.deliveryId),
          handBack.map((d) => d.attempt),
        );
        this.logger.info({ workerId: this.id, released: released.size }, `released ${released.size} unfinished deliveries back to pending`);
      } catch (error) {
        this.logger.warn({ workerId: this.id, deliveries: handBack.length, error: errorMessage(error) }, `could not release ${handBack.length} deliveries (${errorMessage(error)}); their leases will expire`);
      }
    }
    await this.protocol.stopped().catch(() => {}); // else crier.workers calls it stale, which it is not
    await this.close();
    this.state = 'stopped';
    this.logger.info({ workerId: this.id }, `worker ${this.id} stopped`);
  }

  /** Stops starting handlers and claiming; resolves with the deliveries claimed ahead and never started. */
  private async stopClaiming(): Promise<ClaimedDelivery[]> {
    for (const { runner } of this.loops) runner.stopStarting();
    await Promise.all(this.loops.map(({ scheduler }) => scheduler.stop()));
    return this.loops.flatMap(({ runner }) => runner.takeUnstarted());
  }

  private async close(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    await this.listener.stop();
    await this.client.end(5);
  }

  private inFlight(): InFlight[] {
    return this.loops.flatMap(({ runner }) => runner.entries());
  }

  /**
   * Renews the leases of running handlers (a lease found lost aborts its handler) and, in the same
   * round trip, tells crier.workers this worker is alive: it beats while idle too.
   */
  private async heartbeat(): Promise<void> {
    const entries = this.inFlight().filter((e) => !e.lost);
    if (this.state !== 'running') return;
    try {
      const held = await this.protocol.extendLeases(
        entries.map((e) => e.delivery.deliveryId),
        entries.map((e) => e.delivery.attempt),
      );
      for (const entry of entries) {
        if (held.has(entry.delivery.deliveryId)) continue;
        const subscription = this.subscriptionOf(entry);
        if (subscription === undefined) continue; // settled meanwhile: its ack is on its way, nothing to renew
        entry.lost = true;
        const error = new Error('lease lost: another attempt owns this delivery');
        entry.abort(error);
        const message = `delivery ${entry.delivery.deliveryId}: lease lost (expired and taken over); its handler is aborted`;
        const { deliveryId, eventId, topic, attempt } = entry.delivery;
        this.logger.warn({ subscription, deliveryId, eventId, topic, attempt }, message);
        this.events.emit('error', { error, message, subscription });
      }
    } catch (error) {
      // Idle, nothing is at stake but being seen: the claims report connection trouble.
      if (entries.length > 0) this.logger.warn({ workerId: this.id, error: errorMessage(error) }, `heartbeat failed (${errorMessage(error)}); leases run out if this lasts`);
    }
  }

  /** The subscription whose runner holds `entry`; undefined once it settled. */
  private subscriptionOf(entry: InFlight): string | undefined {
    return this.loops.find(({ runner }) => runner.holds(entry))?.runner.settings.name;
  }

  /**
   * Every pollInterval, one round trip for the whole worker: rescues expired leases, and tells each
   * subscription asleep on its parked row what the database says about it (crier.worker_poll), so
   * that no idle subscription polls on its own.
   */
  private poll(): Promise<void> {
    if (this.state !== 'running' || this.polling) return this.polling ?? Promise.resolve();
    const parked = this.loops.filter(({ scheduler }) => scheduler.idleParked);
    this.polling = this.protocol.poll(parked.map(({ scheduler }) => scheduler.settings.name)).then(
      (report) => {
        if (report.rescued > 0) this.logger.warn({ rescued: report.rescued }, `rescued ${report.rescued} deliveries whose lease had expired`);
        const byName = new Map(parked.map(({ scheduler }) => [scheduler.settings.name, scheduler]));
        for (const polled of report.parked) byName.get(polled.name)?.polled(polled.parked, polled.nextDueIn);
      },
      // Claims report connection trouble; the next tick tries again.
      () => {},
    ).finally(() => (this.polling = undefined));
    return this.polling;
  }

  private onAckRefused(ids: string[]): void {
    const message = `ack refused for deliveries ${ids.join(', ')}: the lease had expired and the delivery was taken over (or it was already acked)`;
    this.logger.warn({ deliveryIds: ids }, message);
    this.events.emit('error', { error: new Error('ack refused'), message });
  }

  private installSignalHandlers(): void {
    let signalled = false;
    const remove = () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    };
    const onSignal = (signal: NodeJS.Signals) => {
      if (signalled) {
        this.logger.warn({ signal }, `${signal} again: exiting now; leases of running deliveries will expire`);
        process.exit(130);
      }
      signalled = true;
      this.logger.info({ signal }, `${signal}: stopping gracefully (send it again to exit at once)`);
      void this.stop().then(() => {
        remove();
        // With nobody else listening, let the signal do what it would have done without us.
        if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
      });
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    this.removeSignalHandlers = () => {
      if (!signalled) remove();
    };
  }
}
