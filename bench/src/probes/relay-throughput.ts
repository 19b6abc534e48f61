// Probe: the relay (crier → broker, publisher confirms) beside a plain client publishing the same
// messages straight to the broker, the ceiling. For JetStream and RabbitMQ:
//   direct  events/s: the plain client publishes N messages (same body, same headers) keeping
//           `window` confirms in flight, as the relay does with its concurrency;
//   relay   events/s: N events committed in crier beforehand, from the relay's start until the
//           broker confirmed all N (and until crier recorded all N deliveries done);
//   latency ms from commit (publish returned) to the broker's confirm, 100 events/s on an idle
//           relay, p50/p95/p99; the direct client's publish → confirm beside it.
// The relay runs in this process (a worker with the relay subscription), so the figures include
// its claims and acks but not a second process's scheduling.
//   node --import tsx bench/src/probes/relay-throughput.ts [jetstream|rabbitmq|both] [N] [window] [latency events]
import { randomUUID } from 'node:crypto';
import amqp from 'amqplib';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect as natsConnect, headers as natsHeaders } from '@nats-io/transport-node';
import postgres from 'postgres';
import { createCrier, migrate } from '../../../src/index.ts';
import { jetstreamTarget, rabbitmqTarget, startRelay, type RelayMessage, type RelayTarget } from '../../../src/relay/index.ts';
import { now } from '../clock.ts';
import { createDatabase, dropDatabase, sharedServerUrl } from '../database.ts';
import { makePayload } from '../payload.ts';
import { summarize } from '../stats.ts';

const which = process.argv[2] ?? 'both';
const count = Number(process.argv[3] ?? 20_000);
const window = Number(process.argv[4] ?? 100);
const latencyEvents = Number(process.argv[5] ?? 300);
const natsServers = process.env.NATS_URL ?? '127.0.0.1:4222';
const amqpUrl = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const tag = randomUUID().slice(0, 6);
const crier = createCrier();

const body = (i: number) => Buffer.from(JSON.stringify(makePayload(i)));
const headersOf = (i: number): Record<string, string> => ({
  'crier-event-id': String(i), 'crier-event-uuid': randomUUID(), 'crier-topic': 'bench.relayed', 'crier-correlation-id': randomUUID(),
});

/** Runs `publish(i)` for i < n with at most `inFlight` unresolved at once; returns events/s. */
async function pipelined(n: number, inFlight: number, publish: (i: number) => Promise<unknown>): Promise<number> {
  const started = now();
  let next = 0;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next < n) await publish(next++);
  }));
  return n / ((now() - started) / 1000);
}

/** A target that records when each message was confirmed. */
function timed(inner: RelayTarget, confirmedAt: Map<string, number>, onConfirm: () => void): RelayTarget {
  return {
    name: inner.name,
    async publish(message: RelayMessage, signal?: AbortSignal) {
      await inner.publish(message, signal);
      confirmedAt.set(message.id, now());
      onConfirm();
    },
    close: () => inner.close(),
  };
}

type Percentiles = ReturnType<typeof summarizeP>;
interface Figures { direct: number; relayConfirmed: number; relayDone: number; latency: Percentiles; directLatency: Percentiles }

async function measure(broker: 'jetstream' | 'rabbitmq'): Promise<Figures> {
  const destination = `relaybench${tag}.{name}`;
  let directPublish: (i: number) => Promise<unknown>;
  let cleanup: () => Promise<void>;
  let target: () => RelayTarget;
  if (broker === 'jetstream') {
    const nc = await natsConnect({ servers: natsServers });
    const jsm = await jetstreamManager(nc);
    const stream = `RELAYBENCH_${tag}`;
    await jsm.streams.add({ name: stream, subjects: [`relaybench${tag}.>`] });
    const js = jetstream(nc);
    directPublish = (i) => {
      const h = natsHeaders();
      for (const [k, v] of Object.entries(headersOf(i))) h.set(k, v);
      return js.publish(`relaybench${tag}.direct`, body(i), { msgID: randomUUID(), headers: h });
    };
    target = () => jetstreamTarget({ servers: natsServers });
    cleanup = async () => {
      await jsm.streams.delete(stream);
      await nc.close();
    };
  } else {
    const connection = await amqp.connect(amqpUrl);
    const channel = await connection.createConfirmChannel();
    const exchange = `relaybench-${tag}`;
    const queue = `relaybench-${tag}`;
    await channel.assertExchange(exchange, 'topic', { durable: true });
    await channel.assertQueue(queue, { durable: true });
    await channel.bindQueue(queue, exchange, '#');
    directPublish = (i) => new Promise<void>((resolve, reject) => {
      channel.publish(exchange, 'direct', body(i), { messageId: randomUUID(), persistent: true, contentType: 'application/json', headers: headersOf(i) }, (error) => (error ? reject(error) : resolve()));
    });
    target = () => rabbitmqTarget({ url: amqpUrl, exchange });
    cleanup = async () => {
      await channel.deleteQueue(queue);
      await channel.deleteExchange(exchange);
      await connection.close();
    };
  }

  const direct = await pipelined(count, window, directPublish);
  const directLatencies: number[] = [];
  for (let i = 0; i < latencyEvents; i++) {
    const started = now();
    await directPublish(i);
    directLatencies.push(now() - started);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }

  const url = await createDatabase(sharedServerUrl, `relay_${broker}`);
  const sql = postgres(url, { max: 8, onnotice: () => {} });
  try {
    await migrate({ connection: url });
    // Throughput: N events waiting, then the relay starts.
    const confirmedAt = new Map<string, number>();
    let confirmed = 0;
    let allConfirmed: () => void = () => {};
    const confirmedAll = new Promise<void>((resolve) => (allConfirmed = resolve));
    const spec = { name: 'relay-bench', topics: ['bench.#'], destination, concurrency: window, handleSignals: false, logger: false as const };
    // Declare the subscription first (deliveries are made at publish time), without running it.
    const declaring = await startRelay({ ...spec, connection: url, target: target() });
    await declaring.stop();
    for (let i = 0; i < count; i += 1000) {
      await crier.publishMany(sql, Array.from({ length: Math.min(1000, count - i) }, (_, j) => ({ topic: 'bench.relayed', payload: makePayload(i + j) })));
    }
    const started = now();
    const relay = await startRelay({ ...spec, connection: url, target: timed(target(), confirmedAt, () => ++confirmed === count && allConfirmed()) });
    await confirmedAll;
    const relayConfirmed = count / ((now() - started) / 1000);
    for (;;) {
      const n = (await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM crier.deliveries WHERE state = 'done'`)[0]!.n;
      if (n >= count) break;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const relayDone = count / ((now() - started) / 1000);

    // Latency: 100 events/s, one per transaction, on the now idle relay.
    const committedAt = new Map<string, number>();
    for (let i = 0; i < latencyEvents; i++) {
      const event = await crier.publish(sql, 'bench.latency', makePayload(i));
      committedAt.set(event.uuid, now());
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    while ([...committedAt.keys()].some((id) => !confirmedAt.has(id))) await new Promise((resolve) => setTimeout(resolve, 20));
    await relay.stop();
    const latency = summarizeP([...committedAt].map(([id, at]) => confirmedAt.get(id)! - at));
    return { direct, relayConfirmed, relayDone, latency, directLatency: summarizeP(directLatencies) };
  } finally {
    await sql.end({ timeout: 1 });
    await dropDatabase(url);
    await cleanup();
  }
}

function summarizeP(values: number[]) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { ...summarize(values), p50: at(0.5), p95: at(0.95), p99: at(0.99) };
}

const brokers = which === 'both' ? (['jetstream', 'rabbitmq'] as const) : [which as 'jetstream' | 'rabbitmq'];
console.log(`relay probe: ${count} events, ${window} confirms in flight, latency over ${latencyEvents} events at 100/s`);
console.log('| broker | direct events/s | relay events/s (confirmed) | relay/direct | relay events/s (done in crier) | commit → confirm p50/p95/p99 ms | direct publish → confirm p50/p95/p99 ms |');
console.log('| --- | --- | --- | --- | --- | --- | --- |');
for (const broker of brokers) {
  const f = await measure(broker);
  const ms = (s: { p50: number; p95: number; p99: number }) => `${s.p50.toFixed(1)} / ${s.p95.toFixed(1)} / ${s.p99.toFixed(1)}`;
  console.log(`| ${broker} | ${f.direct.toFixed(0)} | ${f.relayConfirmed.toFixed(0)} | ${(f.relayConfirmed / f.direct).toFixed(2)}× | ${f.relayDone.toFixed(0)} | ${ms(f.latency)} | ${ms(f.directLatency)} |`);
}
