// Producer idempotency keys: a retried publish is a no-op that returns the first event, per topic,
// also when two transactions race with the same key; keys are forgotten after the retention window.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { drizzle } from 'drizzle-orm/postgres-js';
import { CrierError, type Executor } from '../src/index.ts';
import { createCrier } from './support/history.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

const crier = createCrier();
let db: TestDatabase;
before(async () => {
  db = await createTestDatabase('idempotency');
  await db.sql`INSERT INTO crier.subscriptions (name, topics) VALUES ('billing', '{payment.#}')`;
});
after(async () => {
  await db.drop();
});

const eventsWithKey = async (topic: string, key: string) =>
  (await db.sql`SELECT e.id::text FROM crier.events e JOIN crier.idempotency_keys k ON k.event_id = e.id WHERE k.topic = ${topic} AND k.key = ${key}`).length;
const deliveriesOf = async (topic: string) =>
  (await db.sql`SELECT d.id FROM crier.deliveries d JOIN crier.events e ON e.id = d.event_id WHERE e.topic = ${topic}`).length;

describe('idempotency keys', () => {
  test('the same key published twice yields one event; the retry returns it marked duplicate', async () => {
    const first = await db.sql.begin((tx) => crier.publish(tx, 'payment.requested', { amount: 5 }, { idempotencyKey: 'req-1' }));
    const retry = await db.sql.begin((tx) => crier.publish(tx, 'payment.requested', { amount: 5 }, { idempotencyKey: 'req-1' }));
    assert.equal(first.duplicate, false);
    assert.deepEqual({ ...retry, duplicate: false }, first);
    assert.equal(retry.duplicate, true);
    const count = await db.sql`SELECT count(*)::int AS n FROM crier.events WHERE topic = 'payment.requested'`;
    assert.equal(count[0]!.n, 1);
    assert.equal(await deliveriesOf('payment.requested'), 1);
  });

  test('keys are scoped per topic, and a batch mixing new, repeated and keyless events keeps its order', async () => {
    const [a] = await crier.publishMany(db.sql, [{ topic: 'payment.captured', payload: {}, idempotencyKey: 'k' }]);
    const batch = await db.sql.begin((tx) =>
      crier.publishMany(tx, [
        { topic: 'payment.refunded', payload: { n: 0 }, idempotencyKey: 'k' }, // other topic: new
        { topic: 'payment.captured', payload: { n: 1 }, idempotencyKey: 'k' }, // repeat of a
        { topic: 'payment.captured', payload: { n: 2 } }, // no key
        { topic: 'payment.refunded', payload: { n: 3 }, idempotencyKey: 'k' }, // repeat within the batch
      ]),
    );
    assert.deepEqual(batch.map((e) => e.duplicate), [false, true, false, true]);
    assert.equal(batch[1]!.id, a!.id);
    assert.equal(batch[3]!.id, batch[0]!.id);
    assert.ok(BigInt(batch[2]!.id) > BigInt(batch[0]!.id));
    assert.equal(await deliveriesOf('payment.captured'), 2);
    assert.equal(await deliveriesOf('payment.refunded'), 1);
  });

  test('concurrently from two transactions: the second waits for the first and returns its event', async () => {
    const a = await db.sql.reserve();
    const b = await db.sql.reserve();
    try {
      await a`BEGIN`;
      await b`BEGIN`;
      const first = await crier.publish(a as unknown as Executor, 'payment.settled', { by: 'a' }, { idempotencyKey: 'race' });
      let secondDone = false;
      const second = crier.publish(b as unknown as Executor, 'payment.settled', { by: 'b' }, { idempotencyKey: 'race' }).finally(() => {
        secondDone = true;
      });
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(secondDone, false, 'the second publish waits while the first transaction is open');
      await a`COMMIT`;
      const result = await second;
      await b`COMMIT`;
      assert.equal(result.id, first.id);
      assert.equal(result.duplicate, true);
      assert.equal(await eventsWithKey('payment.settled', 'race'), 1);
      assert.equal(await deliveriesOf('payment.settled'), 1);
    } finally {
      a.release();
      b.release();
    }
  });

  test('if the first transaction rolls back, the waiting one publishes', async () => {
    const a = await db.sql.reserve();
    const b = await db.sql.reserve();
    try {
      await a`BEGIN`;
      await b`BEGIN`;
      await crier.publish(a as unknown as Executor, 'payment.voided', {}, { idempotencyKey: 'rb' });
      const second = crier.publish(b as unknown as Executor, 'payment.voided', {}, { idempotencyKey: 'rb' });
      await new Promise((resolve) => setTimeout(resolve, 100));
      await a`ROLLBACK`;
      const result = await second;
      await b`COMMIT`;
      assert.equal(result.duplicate, false);
      assert.equal(await eventsWithKey('payment.voided', 'rb'), 1);
    } finally {
      a.release();
      b.release();
    }
  });

  test('many concurrent producers of one key, through Drizzle and SQL too: one event', async () => {
    const orm = drizzle(db.sql);
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        i % 2 === 0
          ? orm.transaction((tx) => crier.publish(tx, 'payment.flooded', { i }, { idempotencyKey: 'flood' }))
          : db.sql.begin(async (tx) => {
              const [row] = await tx`SELECT crier.publish('payment.flooded', ${JSON.stringify({ i })}::jsonb, NULL, '{}', 'flood')::text AS id`;
              return { id: row!.id as string };
            }),
      ),
    );
    assert.equal(new Set(results.map((r) => r.id)).size, 1);
    assert.equal(await eventsWithKey('payment.flooded', 'flood'), 1);
    assert.equal(await deliveriesOf('payment.flooded'), 1);
  });

  test('after the retention window the key is forgotten; bad keys are refused with a clear error', async () => {
    const first = await crier.publish(db.sql, 'payment.expired', {}, { idempotencyKey: 'old' });
    await db.sql`UPDATE crier.idempotency_keys SET created_at = now() - interval '8 days' WHERE key = 'old'`;
    const [pruned] = await db.sql`SELECT crier.prune_idempotency_keys(interval '7 days') AS n`;
    assert.ok(pruned!.n >= 1);
    const again = await crier.publish(db.sql, 'payment.expired', {}, { idempotencyKey: 'old' });
    assert.notEqual(again.id, first.id);
    assert.equal(again.duplicate, false);

    await assert.rejects(crier.publish(db.sql, 'payment.x', {}, { idempotencyKey: '' }), (e: unknown) => e instanceof CrierError && e.code === 'CRIER_INVALID_IDEMPOTENCY_KEY');
    await assert.rejects(db.sql`SELECT crier.publish('payment.x', '{}', NULL, '{}', ${'x'.repeat(300)})`, /CRIER_IDEMPOTENCY_KEY_TOO_LONG: the idempotency key is 300 bytes/);
  });
});
