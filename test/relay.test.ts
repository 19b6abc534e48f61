// The relay against the real local brokers: a delivery is done only once JetStream or RabbitMQ
// confirmed the message; the message carries the event uuid as its id and crier's headers; a
// broker that refuses or is unreachable fails the attempt (retried, the broker's error recorded);
// an ordered relay keeps each key's events in order across retries. (Each relay starts before
// its events are published: deliveries are made at publish time for the subscriptions that exist.)
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import amqp from 'amqplib';
import { jetstreamManager, jetstream, AckPolicy, type JetStreamManager } from '@nats-io/jetstream';
import { connect as natsConnect, type NatsConnection } from '@nats-io/transport-node';
import { createCrier, withTestHistory } from './support/history.ts';
import { jetstreamTarget, rabbitmqTarget, startRelay, type Relay, type RelayTarget } from '../src/relay/index.ts';
import { natsMissing, natsServers, rabbitmqMissing, rabbitmqUrl } from './support/brokers.ts';
import { createTestDatabase, deliveryOutcomes, eventually, type TestDatabase } from './support/database.ts';

const crier = createCrier();
let db: TestDatabase;
const relays: Relay[] = [];
before(async () => {
  db = await createTestDatabase('relay');
});
after(async () => {
  await Promise.all(relays.map((r) => r.stop()));
  await db.drop();
});

async function relay(options: Parameters<typeof startRelay>[0]): Promise<Relay> {
  const started = await startRelay(withTestHistory({ pollInterval: 200, handleSignals: false, logger: false, ...options }));
  relays.push(started);
  return started;
}

async function deliveries(subscription: string) {
  return db.sql<{ state: string; attempts: number; last_error: string | null; uuid: string }[]>`
    SELECT d.state, d.attempts, d.last_error, e.uuid::text AS uuid FROM crier.deliveries d JOIN crier.events e ON e.id = d.event_id
    WHERE d.subscription = ${subscription} ORDER BY e.id`;
}

describe('relay to JetStream', { skip: natsMissing }, () => {
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  const tag = randomBytes(3).toString('hex');
  const stream = `RELAYTEST_${tag}`;
  before(async () => {
    nc = await natsConnect({ servers: natsServers });
    jsm = await jetstreamManager(nc);
  });
  after(async () => {
    await jsm.streams.delete(stream).catch(() => {});
    await jsm.streams.delete(`${stream}_ORD`).catch(() => {});
    await nc.close();
  });

  /** Every message of the stream, oldest first. */
  async function streamMessages(name: string) {
    const consumerName = `read_${randomBytes(3).toString('hex')}`;
    await jsm.consumers.add(name, { durable_name: consumerName, ack_policy: AckPolicy.None });
    const consumer = await jetstream(nc).consumers.get(name, consumerName);
    const { state } = await jsm.streams.info(name);
    const out = [];
    if (state.messages > 0) {
      const batch = await consumer.fetch({ max_messages: state.messages, expires: 2000 });
      for await (const m of batch) {
        out.push({ subject: m.subject, id: m.headers?.get('Nats-Msg-Id'), headers: m.headers!, body: JSON.parse(m.string()) });
        if (out.length === state.messages) break;
      }
    }
    await jsm.consumers.delete(name, consumerName);
    return out;
  }

  test('a delivery is done only after the PubAck; before the stream exists it fails with the broker\'s error and is retried', async () => {
    const subject = `relaytest${tag}`;
    await relay({
      connection: db.url, name: 'to-nats', topics: ['order.#'], target: jetstreamTarget({ servers: natsServers, timeout: 1000 }),
      destination: `${subject}.{name}`, backoff: { base: 50, max: 200 }, maxAttempts: 100,
    });
    const [event] = await crier.publishMany(db.sql, [
      { topic: 'order.created', key: 'o-1', payload: { id: 1 }, headers: { correlationId: 'conv-1', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', tenant: 'acme' } },
    ]);
    // No stream holds the subject yet: JetStream answers no one, the attempt fails and is retried.
    const failed = await eventually(async () => {
      const [d] = await deliveries('to-nats');
      return d && d.attempts >= 2 && d.state !== 'done' ? d : undefined;
    }, 15_000, 'failed attempts while the stream is missing');
    assert.match(failed!.last_error!, /CRIER_BROKER: jetstream .*no stream captures subject "relaytest[0-9a-f]+\.order\.created"/);

    await jsm.streams.add({ name: stream, subjects: [`${subject}.>`] });
    await eventually(async () => (await deliveries('to-nats'))[0]?.state === 'done', 15_000, 'the delivery done');
    const messages = await streamMessages(stream);
    assert.equal(messages.length, 1, 'stored once, whatever the retries');
    const [m] = messages;
    assert.equal(m!.subject, `${subject}.order.created`);
    assert.equal(m!.id, event!.uuid);
    assert.deepEqual(m!.body, { id: 1 });
    assert.equal(m!.headers.get('crier-event-id'), event!.id);
    assert.equal(m!.headers.get('crier-topic'), 'order.created');
    assert.equal(m!.headers.get('crier-key'), 'o-1');
    assert.equal(m!.headers.get('crier-correlation-id'), 'conv-1');
    assert.equal(m!.headers.get('traceparent'), '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    assert.equal(m!.headers.get('tenant'), 'acme');
  });

  test('an ordered relay keeps each key\'s events in publish order while some publishes fail', async () => {
    const name = `${stream}_ORD`;
    const subject = `relayord${tag}`;
    await jsm.streams.add({ name, subjects: [`${subject}.>`] });
    const inner = jetstreamTarget({ servers: natsServers });
    // The real target, but every third event's first attempt fails before it reaches the broker:
    // an unordered relay would then publish later events of that key first.
    const failedOnce = new Set<string>();
    let seen = 0;
    let inFlight = 0;
    let maxInFlight = 0;
    const flaky: RelayTarget = {
      name: 'flaky jetstream',
      async publish(message, signal) {
        if (++seen % 3 === 0 && !failedOnce.has(message.id)) {
          failedOnce.add(message.id);
          throw new Error('injected failure');
        }
        maxInFlight = Math.max(maxInFlight, ++inFlight);
        try {
          await inner.publish(message, signal);
        } finally {
          inFlight--;
        }
      },
      close: () => inner.close(),
    };
    await relay({
      connection: db.url, name: 'ordered-to-nats', topics: ['stock.#'], target: flaky, destination: `${subject}.{name}`,
      ordered: true, concurrency: 20, backoff: { base: 10, max: 50 },
    });
    const events = Array.from({ length: 60 }, (_, i) => ({ topic: 'stock.moved', key: `k${i % 4}`, payload: { n: i } }));
    await crier.publishMany(db.sql, events);
    await eventually(async () => (await deliveryOutcomes(db.sql, 'ordered-to-nats', 60)).succeeded === 60, 20_000, '60 deliveries done');
    assert.ok(failedOnce.size >= 10, `failures were injected (${failedOnce.size})`);
    // Confirms of different keys are awaited together; never two of one key.
    assert.ok(maxInFlight > 1 && maxInFlight <= 4, `publishes in flight at once: ${maxInFlight} (expected 2..4 for 4 keys)`);
    const messages = await streamMessages(name);
    assert.equal(messages.length, 60);
    for (const key of ['k0', 'k1', 'k2', 'k3']) {
      const order = messages.filter((m) => m.headers.get('crier-key') === key).map((m) => m.body.n as number);
      assert.deepEqual(order, [...order].sort((a, b) => a - b), `key ${key} in publish order`);
    }
  });
});

describe('relay to RabbitMQ', { skip: rabbitmqMissing }, () => {
  let connection: amqp.ChannelModel;
  let channel: amqp.Channel;
  const tag = randomBytes(3).toString('hex');
  const exchange = `crier-relay-test-${tag}`;
  const queue = `crier-relay-test-${tag}`;
  before(async () => {
    connection = await amqp.connect(rabbitmqUrl);
    channel = await connection.createChannel();
    await channel.assertExchange(exchange, 'topic', { durable: false, autoDelete: false });
    await channel.assertQueue(queue, { durable: false, autoDelete: false });
  });
  after(async () => {
    await channel.deleteQueue(queue).catch(() => {});
    await channel.deleteExchange(exchange).catch(() => {});
    await connection.close();
  });

  test('confirmed messages carry the uuid as message_id and crier\'s headers; unroutable ones (mandatory) fail until a queue is bound', async () => {
    await relay({
      connection: db.url, name: 'to-rabbit', topics: ['invoice.#'], target: rabbitmqTarget({ url: rabbitmqUrl, exchange, assertExchange: false, mandatory: true }),
      destination: 'billing.{name}', backoff: { base: 50, max: 200 }, maxAttempts: 100,
    });
    const [event] = await crier.publishMany(db.sql, [
      { topic: 'invoice.paid', key: 'inv-7', payload: { total: 12 }, headers: { correlationId: 'conv-9', causationId: '0190aaaa-0000-7000-8000-000000000000', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' } },
    ]);
    const failed = await eventually(async () => {
      const [d] = await deliveries('to-rabbit');
      return d && d.attempts >= 2 && d.state !== 'done' ? d : undefined;
    }, 15_000, 'failed attempts while nothing is bound');
    assert.match(failed!.last_error!, /CRIER_BROKER: rabbitmq exchange .*no queue is bound for routing key "billing\.invoice\.paid"/);

    await channel.bindQueue(queue, exchange, 'billing.#');
    await eventually(async () => (await deliveries('to-rabbit'))[0]?.state === 'done', 15_000, 'the delivery done');
    const message = (await eventually(() => channel.get(queue, { noAck: true }), 5000, 'the message in the queue')) as amqp.GetMessage;
    assert.equal(message.fields.routingKey, 'billing.invoice.paid');
    assert.equal(message.properties.messageId, event!.uuid);
    assert.equal(message.properties.correlationId, 'conv-9');
    assert.equal(message.properties.contentType, 'application/json');
    assert.deepEqual(JSON.parse(message.content.toString()), { total: 12 });
    const headers = message.properties.headers!;
    assert.equal(headers['crier-event-id'], event!.id);
    assert.equal(headers['crier-topic'], 'invoice.paid');
    assert.equal(headers['crier-key'], 'inv-7');
    assert.equal(headers['crier-causation-id'], '0190aaaa-0000-7000-8000-000000000000');
    assert.equal(headers.traceparent, '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
    assert.equal(await channel.get(queue, { noAck: true }), false, 'delivered once');
  });

  test('a broker that does not answer fails each attempt with its error, until the delivery is dead', async () => {
    // A port nobody listens on: the broker is down.
    await relay({
      connection: db.url, name: 'to-nowhere', topics: ['audit.#'], target: rabbitmqTarget({ url: 'amqp://guest:guest@127.0.0.1:1', exchange }),
      backoff: { base: 10, max: 20 }, maxAttempts: 3,
    });
    await crier.publish(db.sql, 'audit.logged', { n: 1 });
    const [dead] = (await eventually(async () => {
      const rows = await deliveries('to-nowhere');
      return rows[0]?.state === 'dead' ? rows : undefined;
    }, 15_000, 'the delivery dead'))!;
    assert.equal(dead!.attempts, 3);
    assert.match(dead!.last_error!, /CRIER_BROKER: rabbitmq exchange .*ECONNREFUSED/);
  });
});
