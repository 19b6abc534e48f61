// crier through its public API, with its default settings unless `tuning` says otherwise.
// Tuning keys: concurrency (handlers per subscription, crier's default 10), batchSize (deliveries
// claimed per round trip, default = concurrency), pollInterval, maxConnections (the worker's, LISTEN
// included; default 3), telemetry (off by default; tracing: OpenTelemetry tracing, metrics: the
// Prometheus worker metrics, on: both; see crier-telemetry.ts), history (the subscriptions' history:
// full, the default, or failures: a delivery that succeeds at its first attempt is deleted at its ack
// instead of kept as done; e.g. --tuning crier.history=failures).
import { context } from '@opentelemetry/api';
import postgres from 'postgres';
import { createCrier, silentLogger, type Duration, type SubscriptionHistory } from '../../../src/index.ts';
import type { Adapter, Layout, Tuning } from '../adapter.ts';
import { observe, telemetry } from './crier-telemetry.ts';

const plain = createCrier();
const traced = (tuning: Tuning) => tuning.telemetry === 'on' || tuning.telemetry === 'tracing';
const measured = (tuning: Tuning) => tuning.telemetry === 'on' || tuning.telemetry === 'metrics';
const crierFor = (tuning: Tuning) => (traced(tuning) ? createCrier({ instrumentation: telemetry().instrumentation }) : plain);

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
    const crier = crierFor(tuning);
    // Traced: publish inside the application's request span, where crier adds its own.
    const inRequest = traced(tuning) ? <T>(fn: () => Promise<T>) => context.with(telemetry().request, fn) : <T>(fn: () => Promise<T>) => fn();
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
    const worker = crierFor(tuning).worker({
      connection: url,
      logger: silentLogger,
      handleSignals: false,
      ...(tuning.pollInterval === undefined ? {} : { pollInterval: tuning.pollInterval as Duration }),
      ...(tuning.maxConnections === undefined ? {} : { maxConnections: Number(tuning.maxConnections) }),
      subscriptions: subscriptions(layout, tuning, handle),
    });
    if (measured(tuning)) observe(worker);
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
