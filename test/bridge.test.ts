// The bridge against the real local brokers: each broker message becomes one crier event (message
// id as idempotency key), a redelivered or republished message makes no second event, a message
// that cannot be an event is rejected without holding up the others, and the broker is acked only
// after the commit (nothing stays unacked once the events are in).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import amqp from 'amqplib';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect as natsConnect, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { startJetStreamBridge, startRabbitMqBridge, type Bridge } from '../src/bridge/index.ts';
import { createCrier, withTestHistory } from './support/history.ts';
import { rabbitmqTarget, startRelay } from '../src/relay/index.ts';
import { natsMissing, natsServers, rabbitmqMissing, rabbitmqUrl } from './support/brokers.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/database.ts';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase('bridge');
});
after(async () => {
  await db.drop();
});

async function events(topicPrefix: string) {
  return db.sql<{ topic: string; payload: any; headers: any; key: string | null }[]>`
    SELECT topic, payload, headers, key FROM crier.events WHERE topic LIKE ${`${topicPrefix}%`} ORDER BY id`;
}

describe('bridge from RabbitMQ', { skip: rabbitmqMissing }, () => {
  let connection: amqp.ChannelModel;
  let channel: amqp.ConfirmChannel;
  const tag = randomBytes(3).toString('hex');
  const exchange = `crier-bridge-test-${tag}`;
  const queue = `crier-bridge-test-${tag}`;
  const bridges: Bridge[] = [];
  before(async () => {
    connection = await amqp.connect(rabbitmqUrl);
    channel = await connection.createConfirmChannel();
    await channel.assertExchange(exchange, 'topic', { durable: false });
    // As the bridge declares it (checking a missing queue would close this channel).
    await channel.assertQueue(queue, { durable: true });
  });
  after(async () => {
    await Promise.all(bridges.map((b) => b.stop()));
    await channel.deleteQueue(queue).catch(() => {});
    await channel.deleteExchange(exchange).catch(() => {});
    await connection.close();
  });

  function send(routingKey: string, body: unknown, options: amqp.Options.Publish = {}) {
    channel.publish(exchange, routingKey, Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), options);
  }

  test('each message once, with its headers; a republished message id makes no second event; poison is rejected', async () => {
    const bridge = await startRabbitMqBridge({
      connection: db.url, url: rabbitmqUrl, queue, bindings: [{ exchange, pattern: 'shop.#' }],
      topic: `legacy${tag}.{name}`, keyHeader: 'order-id', batchSize: 10, logger: false,
    });
    bridges.push(bridge);
    await eventually(async () => (await channel.checkQueue(queue)).consumerCount === 1, 10_000, 'the bridge consuming');
    for (let i = 0; i < 30; i++) {
      send('shop.order.placed', { n: i }, { messageId: `m-${i}`, correlationId: 'conv-1', headers: { 'order-id': `o-${i % 3}`, traceparent: 'tp' } });
    }
    send('shop.order placed', { bad: 'topic' }, { messageId: 'bad-topic' }); // a space: not a crier topic
    send('shop.order.placed', 'not json', { messageId: 'bad-body' });
    // The same ids again, as a producer retrying (or RabbitMQ redelivering after a lost ack) sends them.
    for (let i = 0; i < 30; i += 3) send('shop.order.placed', { n: i }, { messageId: `m-${i}` });
    await channel.waitForConfirms();

    await eventually(() => bridge.stats.published + bridge.stats.duplicates + bridge.stats.rejected === 42, 15_000, 'all 42 messages handled');
    assert.deepEqual(bridge.stats, { published: 30, duplicates: 10, rejected: 2, echoes: 0 });
    const rows = await events(`legacy${tag}.`);
    assert.equal(rows.length, 30);
    assert.deepEqual(rows.map((r) => r.payload.n), Array.from({ length: 30 }, (_, i) => i), 'in queue order');
    assert.equal(rows[4]!.topic, `legacy${tag}.shop.order.placed`);
    assert.equal(rows[4]!.key, 'o-1');
    assert.equal(rows[4]!.headers.correlationId, 'conv-1');
    assert.equal(rows[4]!.headers.traceparent, 'tp');
    assert.equal(rows[4]!.headers['crier-source'], 'shop.order.placed');
    assert.equal(rows[4]!.headers['crier-source-message-id'], 'm-4');
    const q = await eventually(async () => {
      const info = await channel.checkQueue(queue);
      return info.messageCount === 0 ? info : undefined;
    }, 5000, 'the queue empty (everything acked or rejected)');
    assert.equal(q!.messageCount, 0);
  });

  test('messages sent again with ids crier already holds (as RabbitMQ redelivers after a lost ack) make no second event', async () => {
    const topic = `redeliver${tag}.{name}`;
    const rq = `${queue}-redeliver`;
    await channel.assertQueue(rq, { durable: false });
    await channel.bindQueue(rq, exchange, 'again.#');
    for (let i = 0; i < 5; i++) send('again.x', { n: i }, { messageId: `r-${i}` });
    await channel.waitForConfirms();
    // (A bridge SIGKILLed between its commit and its ack, really redelivered, is in faults/relay.ts.)
    const first = await startRabbitMqBridge({ connection: db.url, url: rabbitmqUrl, queue: rq, topic, batchSize: 5, logger: false });
    await eventually(() => first.stats.published === 5, 10_000, 'the first bridge published');
    for (let i = 0; i < 5; i++) send('again.x', { n: i }, { messageId: `r-${i}` });
    await channel.waitForConfirms();
    await eventually(() => first.stats.duplicates === 5, 10_000, 'duplicates seen');
    await first.stop();
    assert.equal((await events(`redeliver${tag}.`)).length, 5);
    await channel.deleteQueue(rq);
  });
});

describe('relay and bridge on one RabbitMQ exchange', { skip: rabbitmqMissing }, () => {
  test('what this crier relayed out is not bridged back in (no loop)', async () => {
    const tag = randomBytes(3).toString('hex');
    const exchange = `crier-loop-test-${tag}`;
    const connection = await amqp.connect(rabbitmqUrl);
    const channel = await connection.createChannel();
    try {
      await channel.assertExchange(exchange, 'topic', { durable: true });
      const bridge = await startRabbitMqBridge({
        connection: db.url, url: rabbitmqUrl, queue: exchange, bindings: [{ exchange, pattern: `loop${tag}.#` }], logger: false,
      });
      const relay = await startRelay(withTestHistory<Parameters<typeof startRelay>[0]>({
        connection: db.url, name: `loop-${tag}`, topics: [`loop${tag}.#`], target: rabbitmqTarget({ url: rabbitmqUrl, exchange }),
        handleSignals: false, logger: false, pollInterval: 200,
      }));
      try {
        await createCrier().publish(db.sql, `loop${tag}.created`, { n: 1 });
        await eventually(() => bridge.stats.echoes === 1, 10_000, 'the relayed message seen by the bridge');
        await new Promise((resolve) => setTimeout(resolve, 300));
        assert.deepEqual(bridge.stats, { published: 0, duplicates: 0, rejected: 0, echoes: 1 });
        assert.equal((await events(`loop${tag}.`)).length, 1);
      } finally {
        await relay.stop();
        await bridge.stop();
      }
    } finally {
      await channel.deleteQueue(exchange).catch(() => {});
      await channel.deleteExchange(exchange).catch(() => {});
      await connection.close();
    }
  });
});

describe('bridge from JetStream', { skip: natsMissing }, () => {
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  const tag = randomBytes(3).toString('hex');
  const stream = `BRIDGETEST_${tag}`;
  const bridges: Bridge[] = [];
  before(async () => {
    nc = await natsConnect({ servers: natsServers });
    jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: stream, subjects: [`bridge${tag}.>`] });
  });
  after(async () => {
    await Promise.all(bridges.map((b) => b.stop()));
    await jsm.streams.delete(stream).catch(() => {});
    await nc.close();
  });

  test('each stream message once; a second consumer reading the same messages (a redelivery) adds no event', async () => {
    const js = jetstream(nc);
    for (let i = 0; i < 20; i++) {
      const h = natsHeaders();
      h.set('crier-correlation-id', 'conv-7');
      // Half with a producer's message id, half without (their key is stream:sequence).
      await js.publish(`bridge${tag}.payment.done`, JSON.stringify({ n: i }), { headers: h, ...(i % 2 === 0 ? { msgID: `p-${i}` } : {}) });
    }
    const start = (consumer: string) => startJetStreamBridge({
      connection: db.url, servers: natsServers, stream, consumer, batchSize: 8, logger: false,
    });
    const first = await start('crier-a');
    bridges.push(first);
    await eventually(() => first.stats.published === 20, 15_000, '20 published');
    const rows = await events(`bridge${tag}.`);
    assert.equal(rows.length, 20);
    assert.deepEqual(rows.map((r) => r.payload.n), Array.from({ length: 20 }, (_, i) => i));
    assert.equal(rows[0]!.headers.correlationId, 'conv-7');
    // A second durable consumer sees every message again, as a consumer whose acks were lost would.
    const second = await start('crier-b');
    bridges.push(second);
    await eventually(() => second.stats.duplicates === 20, 15_000, '20 duplicates');
    assert.equal(second.stats.published, 0);
    assert.equal((await events(`bridge${tag}.`)).length, 20);
    const info = await jsm.consumers.info(stream, 'crier-a');
    assert.equal(info.num_ack_pending, 0, 'everything acked');
  });
});
