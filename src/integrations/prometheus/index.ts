// crier/prometheus: crier's metrics in a prom-client registry. Two sources, kept apart:
//   - worker counters and histograms, fed by the events of the workers of this process
//     (observeWorker): what its handlers did, by subscription and topic;
//   - database gauges and the published counter, read by ONE exporter per deployment
//     (collectDatabaseGauges, or `crier metrics`): one query per scrape, whatever the number of
//     workers. Every worker exporting the gauges would multiply both the queries and the series.
// prom-client is an optional peer dependency: only this entry point imports it.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Connection } from '../../connection.ts';
import { toMilliseconds, type Duration } from '../../duration.ts';
import { CrierError } from '../../errors.ts';
import { errorMessage, toLogger, type Logger } from '../../logger.ts';
import { databaseReader, type DatabaseReadingOptions, type Reading } from './database-reading.ts';
import { serveMetrics, type MetricsServer, type ServeOptions } from './server.ts';
import type { AttemptEvent, WorkerEventName, WorkerEvents } from '../../worker/events.ts';

export type { DatabaseReadingOptions, Reading, SubscriptionGauges } from './database-reading.ts';
export { serveMetrics, type MetricsServer, type ServeOptions } from './server.ts';

export interface PrometheusMetricsOptions {
  /** Where the metrics are registered (default: a new Registry; pass prom-client's `register` for the global one). */
  registry?: Registry;
  /** Prefix of every metric name (default "crier_"). */
  prefix?: string;
}

export interface DatabaseGaugesOptions extends DatabaseReadingOptions {
  /**
   * A reading younger than this is served again (default 1s). Every gauge of one scrape shares one
   * reading anyway; a longer interval also shields the database from many or frequent scrapers.
   */
  interval?: Duration;
  /** Where readings that failed during a scrape are reported (default: stderr); false for nowhere. */
  logger?: Logger | false;
}

/** A crier Worker, or anything with its on(): the metrics listen to its handled, retry and dead events. */
export interface ObservableWorker {
  on<K extends WorkerEventName>(name: K, listener: WorkerEvents[K]): () => void;
}

export interface PrometheusMetrics {
  readonly registry: Registry;
  /**
   * Registers the database gauges and crier_published_total, read from the database on each
   * scrape (one query). Run it in one process per database: an exporter, or `crier metrics`.
   */
  collectDatabaseGauges(connection: Connection, options?: DatabaseGaugesOptions): DatabaseGauges;
  /** Counts what a worker's handlers do; returns a function that stops counting. */
  observeWorker(worker: ObservableWorker): () => void;
  /** Serves the registry on GET /metrics (default 127.0.0.1:9464). */
  serve(options?: ServeOptions): Promise<MetricsServer>;
}

export interface DatabaseGauges {
  /** Reads now (as a scrape would) and updates the gauges; rejects when the reading failed (crier_database_up is then 0). */
  refresh(): Promise<Reading>;
  /** Closes the gauges' database connection (the metrics stay registered, with their last values). */
  close(): Promise<void>;
}

export const handlerDurationBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
export const endToEndLatencyBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

export function prometheusMetrics(options: PrometheusMetricsOptions = {}): PrometheusMetrics {
  const registry = options.registry ?? new Registry();
  const prefix = options.prefix ?? 'crier_';
  const name = (suffix: string) => `${prefix}${suffix}`;
  const byTopic = ['subscription', 'topic'] as const;
  let workerMetrics: ReturnType<typeof createWorkerMetrics> | undefined;

  function createWorkerMetrics() {
    const counter = (suffix: string, help: string) =>
      new Counter({ name: name(suffix), help, labelNames: byTopic, registers: [registry] });
    return {
      handled: counter('handled_total', 'Deliveries handled (acked done) by this process\'s workers.'),
      failed: counter('failed_total', 'Handler attempts that failed (retried or dead), by this process\'s workers.'),
      retried: counter('retried_total', 'Failed attempts that will run again.'),
      dead: counter('dead_total', 'Deliveries that failed their last attempt and were dead-lettered.'),
      duration: new Histogram({
        name: name('handler_duration_seconds'),
        help: 'Handler run time of each attempt, whatever its outcome.',
        labelNames: ['subscription'],
        buckets: handlerDurationBuckets,
        registers: [registry],
      }),
      latency: new Histogram({
        name: name('end_to_end_latency_seconds'),
        help: 'From the event\'s publish (its transaction\'s start) to the start of its first handler attempt.',
        labelNames: ['subscription'],
        buckets: endToEndLatencyBuckets,
        registers: [registry],
      }),
    };
  }

  return {
    registry,
    collectDatabaseGauges(connection, gaugeOptions = {}) {
      if (registry.getSingleMetric(name('backlog'))) {
        throw new CrierError('CRIER_INVALID_OPTION', `collectDatabaseGauges: this registry already has ${name('backlog')}; read the database gauges once per registry (one exporter per database)`);
      }
      return registerDatabaseGauges(registry, name, connection, gaugeOptions);
    },
    observeWorker(worker) {
      const m = (workerMetrics ??= createWorkerMetrics());
      const observeAttempt = (e: AttemptEvent) => {
        const labels = { subscription: e.subscription, topic: e.topic };
        m.duration.observe({ subscription: e.subscription }, e.durationMs / 1000);
        // Once per delivery: later attempts' start includes the retry backoff, not queueing.
        if (e.attempt === 1) m.latency.observe({ subscription: e.subscription }, Math.max(0, (e.startedAt.getTime() - e.publishedAt.getTime()) / 1000));
        return labels;
      };
      const off = [
        worker.on('handled', (e) => m.handled.inc(observeAttempt(e))),
        worker.on('retry', (e) => {
          const labels = observeAttempt(e);
          m.failed.inc(labels);
          m.retried.inc(labels);
        }),
        worker.on('dead', (e) => {
          const labels = observeAttempt(e);
          m.failed.inc(labels);
          m.dead.inc(labels);
        }),
      ];
      return () => off.forEach((stop) => stop());
    },
    serve: (serveOptions) => serveMetrics(registry, serveOptions),
  };
}

function registerDatabaseGauges(
  registry: Registry,
  name: (suffix: string) => string,
  connection: Connection,
  options: DatabaseGaugesOptions,
): DatabaseGauges {
  const intervalMs = toMilliseconds(options.interval ?? '1s', 'interval');
  const logger = toLogger(options.logger);
  const reader = databaseReader(connection, options);
  let last: { at: number; reading: Promise<Reading> } | undefined;
  let inFlight = false;

  const gauges: { gauge: Gauge; value: (g: Reading['subscriptions'][number]) => number }[] = [];
  const published = new Counter({
    name: name('published_total'),
    help: 'Events committed to crier.events, by topic, counted by this exporter from the database (up to its settle time ago).',
    labelNames: ['topic'],
    registers: [registry],
    collect: scrape,
  });
  const up = new Gauge({
    name: name('database_up'),
    help: '1 when the last database reading for the metrics succeeded, 0 when it failed or timed out.',
    registers: [registry],
    collect: scrape,
  });
  const duration = new Gauge({
    name: name('database_reading_seconds'),
    help: 'How long the last database reading for the metrics took.',
    registers: [registry],
    collect: scrape,
  });

  function perSubscription(suffix: string, help: string, value: (g: Reading['subscriptions'][number]) => number) {
    const gauge: Gauge = new Gauge({ name: name(suffix), help, labelNames: ['subscription'], registers: [registry], collect: scrape });
    gauges.push({ gauge, value });
  }
  perSubscription('backlog', 'Deliveries due now and not claimed: first attempts and due retries.', (g) => g.backlog);
  perSubscription('oldest_due_age_seconds', 'How long the oldest due delivery has been waiting (0 when none is due).', (g) => g.oldestDueAgeSeconds);
  perSubscription('retrying', 'Deliveries that failed and wait for a later attempt.', (g) => g.retrying);
  perSubscription('delayed', 'Deliveries never attempted, published with a delay not yet passed.', (g) => g.delayed);
  perSubscription('running', 'Deliveries claimed by a worker (state running).', (g) => g.running);
  perSubscription('stuck', 'Running deliveries making no progress: the lease ran out, or their registered worker stopped beating (crier.stuck_deliveries).', (g) => g.stuck);
  perSubscription('oldest_stuck_seconds', 'How long the oldest stuck delivery has made no progress (0 when none).', (g) => g.oldestStuckSeconds);
  perSubscription('dead_letters', 'Dead deliveries (crier.dead_letters), until requeued or pruned.', (g) => g.dead);
  perSubscription('waiting', 'Ordered subscriptions: deliveries queued behind an earlier one of their key.', (g) => g.waiting);
  perSubscription('blocked_keys', 'Ordered subscriptions: keys stuck behind a dead head (crier.blocked_keys).', (g) => g.blockedKeys);
  perSubscription('subscription_paused', '1 when the subscription is paused.', (g) => (g.paused ? 1 : 0));

  async function scrape(): Promise<void> {
    await current().catch((error: unknown) => logger.warn({ error: errorMessage(error) }, 'metrics: reading the database failed'));
  }

  /** The reading of this scrape: shared by every metric's collect(), and reused while younger than the interval. */
  function current(): Promise<Reading> {
    if (last && (inFlight || performance.now() - last.at < intervalMs)) return last.reading;
    inFlight = true;
    const reading = read().finally(() => (inFlight = false));
    last = { at: performance.now(), reading };
    return reading;
  }

  async function read(): Promise<Reading> {
    try {
      const reading = await reader.read();
      for (const { gauge, value } of gauges) {
        gauge.reset();
        for (const g of reading.subscriptions) gauge.set({ subscription: g.subscription }, value(g));
      }
      for (const p of reading.published) published.inc({ topic: p.topic }, p.count);
      up.set(1);
      duration.set(reading.durationSeconds);
      return reading;
    } catch (error) {
      // No numbers rather than stale ones: the gauges' series vanish and crier_database_up says why.
      for (const { gauge } of gauges) gauge.reset();
      up.set(0);
      throw error;
    }
  }

  return {
    refresh: () => {
      if (!inFlight) last = undefined;
      return current();
    },
    close: () => reader.close(),
  };
}
