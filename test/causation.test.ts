// Publishing from handlers: correlation and causation headers are set automatically, chains read
// back with crier.event_chain / eventChain; and the consumer-side dedup record.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { eventChain, type CrierEvent } from '../src/index.ts';
import { createCrier } from './support/history.ts';
import { createTestDatabase, deliveryStates, eventually, type TestDatabase } from './support/database.ts';

const crier = createCrier();
let db: TestDatabase;
before(async () => {
  db = await createTestDatabase('causation');
});
after(async () => {
  await db.drop();
});

describe('causation', () => {
  test('causation ids chain across three hops (plain and transactional handlers) and print as a tree', async () => {
    const seen: CrierEvent[] = [];
    const worker = await crier
      .worker({
        connection: db.url,
        handleSignals: false,
        logger: false,
        pollInterval: '100ms',
        subscriptions: [
          { name: 'payments', topics: ['order.placed'], handler: async (e, ctx) => void (seen.push(e), await ctx.publish('payment.requested', { order: 1 })) },
          {
            name: 'shipping',
            topics: ['payment.requested'],
            transactional: true,
            handler: async (e, ctx) => void (seen.push(e), await ctx.publishMany([{ topic: 'shipment.requested', payload: {} }, { topic: 'invoice.sent', payload: {} }])),
          },
          // The third hop publishes through its own transaction with causedBy.
          { name: 'notify', topics: ['shipment.requested'], handler: async (e) => void (seen.push(e), await db.sql.begin((tx) => crier.publish(tx, 'customer.notified', {}, { causedBy: e }))) },
        ],
      })
      .start();
    try {
      const root = await crier.publish(db.sql, 'order.placed', { order: 1 });
      await eventually(async () => (await db.sql`SELECT 1 FROM crier.events WHERE topic = 'customer.notified'`).length === 1, 10_000, 'the third hop published');
      const events = await db.sql`SELECT topic, uuid::text AS uuid, headers FROM crier.events ORDER BY id`;
      const byTopic = Object.fromEntries(events.map((e) => [e.topic, e]));
      assert.deepEqual(byTopic['order.placed']!.headers, {});
      const expectCause = (topic: string, cause: string) =>
        assert.deepEqual(byTopic[topic]!.headers, { correlationId: root.uuid, causationId: byTopic[cause]!.uuid }, topic);
      expectCause('payment.requested', 'order.placed');
      expectCause('shipment.requested', 'payment.requested');
      expectCause('invoice.sent', 'payment.requested');
      expectCause('customer.notified', 'shipment.requested');
      assert.deepEqual(seen.map((e) => [e.topic, e.correlationId, e.causationId]), [
        ['order.placed', root.uuid, null],
        ['payment.requested', root.uuid, root.uuid],
        ['shipment.requested', root.uuid, byTopic['payment.requested']!.uuid],
      ]);

      const fromLeaf = await eventChain(db.sql, byTopic['customer.notified']!.uuid);
      assert.deepEqual(fromLeaf.map((l) => `${l.depth} ${l.path}`), [
        '0 order.placed',
        '1 order.placed > payment.requested',
        '2 order.placed > payment.requested > shipment.requested',
        '3 order.placed > payment.requested > shipment.requested > customer.notified',
        '2 order.placed > payment.requested > invoice.sent',
      ]);
      const fromRootById = await db.sql`SELECT depth, topic FROM crier.event_chain(${root.id})`;
      assert.equal(fromRootById.length, 5);
      assert.deepEqual(await eventChain(db.sql, 'no-such-event'), []);
    } finally {
      await worker.stop();
    }
  });
});

describe('consumer-side dedup (crier.processed)', () => {
  test('a redelivered event is recognised and its effect is not repeated', async () => {
    await db.sql`CREATE TABLE mails (event_id bigint)`;
    const marks: boolean[] = [];
    const worker = await crier
      .worker({
        connection: db.url,
        handleSignals: false,
        logger: false,
        pollInterval: '100ms',
        subscriptions: [
          {
            name: 'mailer',
            topics: ['mail.#'],
            backoff: { base: 10, max: 10 },
            handler: async (event, ctx) => {
              // The mail and its record commit together; the ack comes later and may be lost.
              const first = await db.sql.begin(async (tx) => {
                const fresh = await ctx.markProcessed(tx);
                if (fresh) await tx`INSERT INTO mails VALUES (${event.id})`;
                return fresh;
              });
              marks.push(first);
              if (ctx.attempt === 1) throw new Error('crashed before the ack');
              assert.equal(await ctx.isProcessed(), true);
            },
          },
        ],
      })
      .start();
    try {
      const event = await crier.publish(db.sql, 'mail.welcome', {});
      await eventually(async () => (await deliveryStates(db.sql, 'mailer')).done === 1, 10_000, 'done');
      assert.deepEqual(marks, [true, false]);
      assert.equal((await db.sql`SELECT count(*)::int AS n FROM mails WHERE event_id = ${event.id}`)[0]!.n, 1);
      const [{ pruned }] = (await db.sql`SELECT crier.prune_processed(interval '0 seconds') AS pruned`) as unknown as [{ pruned: number }];
      assert.equal(pruned, 1);
    } finally {
      await worker.stop();
    }
  });
});
