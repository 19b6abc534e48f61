// crier through its public API, with its default settings unless `tuning` says otherwise.
// Tuning keys: concurrency (handlers per subscription, crier's default 10), batchSize (deliveries
// claimed per round trip, default = concurrency), pollInterval, maxConnections (the worker's, LISTEN
// included; default 3), telemetry (off by default; tracing: OpenTelemetry tracing, metrics: the
// Prometheus worker metrics, on: both; see crier-telemetry.ts), history (the subscriptions' history:
// full, the default, or failures: a delivery that succeeds at its first attempt is deleted at its ack
// instead of kept as done; e.g. --tuning crier.history=failures).
import postgres from 'postgres';
import { createCrier, silentLogger, type Duration, type SubscriptionHistory } from '../../../src/index.ts';
import type { Adapter, Layout, Tuning } from '../adapter.ts';

const plain = createCrier();
const traced = (tuning: Tuning) => tuning.telemetry === 'on' || tuning.telemetry === 'tracing';
const measured = (tuning: Tuning) => tuning.telemetry === 'on' || tuning.telemetry === 'metrics';
// The OpenTelemetry SDK and prom-client load only when asked: imported by every crier cell, they
// added about 11 MiB to the worker's RSS that raw's process never pays (and crier's users neither).
const telemetryModule = () => import('./crier-telemetry.ts');
const crierFor = async (tuning: Tuning) =>
  traced(tuning) ? createCrier({ instrumentation: (await telemetryModule()).telemetry().instrumentation }) : plain;

function subscriptions(layout: Layout, tuning: Tuning, handle: (payload: any) => void) {
  return layout.queues.map((name, i) => ({
    name,
    topics: [layout.topics?.[i] ?? layout.topic],
    ...(tuning.concurrency === undefined ? {} : { concurrency: Number(tuning.concurrency) }),
    ...(tuning.batchSize === undefined ? {} : { batchSize: Number(tuning.batchSize) }),
    ...(tuning.history === undefined ? {} : { history: tuning.history as SubscriptionHistory }),
    handler: (event: { payload: unknown }) => {
      handle(event.payload);
    },
  }));
}

/** Runs a publish inside the application's request span (the SDK registered on first use). */
async function tracedRequest(): Promise<<T>(fn: () => Promise<T>) => Promise<T>> {
  const [{ context }, { telemetry }] = await Promise.all([import('@opentelemetry/api'), telemetryModule()]);
  const { request } = telemetry();
  return (fn) => context.with(request, fn);
}

export const adapter: Adapter = {
  name: 'crier',
  fanOut: true,

  async install(url, layout, tuning) {
    await plain.migrate(url);
    // Subscriptions are declared by a worker's start; declare them before anything is published.
    const worker = plain.worker({
      connection: url,
      logger: silentLogger,
      handleSignals: false,
      subscriptions: subscriptions(layout, tuning, () => {}),
    });
    await worker.start();
    await worker.stop();
  },

  async publisher(url, layout, connections, tuning) {
    const sql = postgres(url, { max: connections, onnotice: () => {} });
    const crier = await crierFor(tuning);
    // Traced: publish inside the application's request span, where crier adds its own.
    const inRequest = traced(tuning) ? await tracedRequest() : <T>(fn: () => Promise<T>) => fn();
    const topicOf = (queue = 0) => layout.topics?.[queue] ?? layout.topic;
    return {
      one: async (payload, queue) => {
        await inRequest(() => crier.publish(sql, topicOf(queue), payload));
      },
      many: async (payloads, queue) => {
        const topic = topicOf(queue);
        await inRequest(() => crier.publishMany(sql, payloads.map((payload) => ({ topic, payload }))));
      },
      close: () => sql.end({ timeout: 5 }),
    };
  },

  async worker(url, layout, handle, tuning) {
    const worker = (await crierFor(tuning)).worker({
      connection: url,
      logger: silentLogger,
      handleSignals: false,
      ...(tuning.pollInterval === undefined ? {} : { pollInterval: tuning.pollInterval as Duration }),
      ...(tuning.maxConnections === undefined ? {} : { maxConnections: Number(tuning.maxConnections) }),
      subscriptions: subscriptions(layout, tuning, handle),
    });
    if (measured(tuning)) (await telemetryModule()).observe(worker);
    await worker.start();
    return { stop: () => worker.stop() };
  },

  async remaining(url) {
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    try {
      // Pending through the pending index, running through the lease index (a running delivery is
      // the one with a lease): \`state IN ('pending', 'running')\` has no index and would scan every
      // done delivery inside the timed window (seconds with a million of history, in growth).
      const [row] = await sql`
        SELECT (SELECT count(*) FROM crier.deliveries WHERE state = 'pending')::int
             + (SELECT count(*) FROM crier.deliveries WHERE locked_until IS NOT NULL)::int AS n`;
      return row!.n as number;
    } finally {
      await sql.end();
    }
  },
};
