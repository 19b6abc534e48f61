// crier/testing's drain and publishAndDrain run every kind of handler as a worker would: plain
// handlers with ctx.publish and ctx.markProcessed, and transactional handlers whose writes, published
// events and dedup record commit with the ack, or roll back together when the handler throws.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { subscription } from '../src/index.ts';
import { createCrier, drain, publishAndDrain } from './support/history.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

const crier = createCrier();
let db: TestDatabase;

before(async () => {
  db = await createTestDatabase('testing_kinds');
  await db.sql`CREATE TABLE effects (event_id bigint NOT NULL, attempt int NOT NULL)`;
});
after(async () => {
  await db.drop();
});

const effects = async (eventId: string) =>
  (await db.sql`SELECT attempt FROM effects WHERE event_id = ${eventId} ORDER BY attempt`).map((r) => r.attempt as number);
const followUps = async (topic: string) =>
  (await db.sql`SELECT payload, headers FROM crier.events WHERE topic = ${topic} ORDER BY id`).map((r) => ({ payload: r.payload, headers: r.headers }));
const processed = async (name: string) => (await db.sql`SELECT count(*)::int AS n FROM crier.processed WHERE subscription = ${name}`)[0]!.n as number;
/** Makes a retried delivery due now, as if its backoff had passed. */
const makeDue = (name: string) => db.sql`UPDATE crier.deliveries SET available_at = now() WHERE subscription = ${name} AND state = 'pending'`;

describe('crier/testing with every handler kind', () => {
  test('publishAndDrain: a plain handler publishes a caused event and deduplicates with markProcessed', async () => {
    const marks: boolean[] = [];
    const plain = subscription({
      name: 'kinds-plain',
      topics: ['kinds.plain'],
      handler: async (event, ctx) => {
        marks.push(await ctx.markProcessed());
        marks.push(await ctx.isProcessed());
        await ctx.publish('kinds.plain.followup', { from: event.uuid });
      },
    });
    const result = await publishAndDrain(db.url, [plain], (tx) => crier.publish(tx, 'kinds.plain', { n: 1 }));
    assert.deepEqual([result.done, result.retried, result.dead], [1, 0, 0]);
    assert.deepEqual(marks, [true, true]);
    const [followUp] = await followUps('kinds.plain.followup');
    const [source] = await db.sql`SELECT uuid::text FROM crier.events WHERE topic = 'kinds.plain'`;
    assert.deepEqual(followUp!.payload, { from: source!.uuid });
    assert.equal(followUp!.headers.causationId, source!.uuid, 'ctx.publish carries causation');
    assert.equal(await processed('kinds-plain'), 1);
  });

  test('publishAndDrain: a transactional handler that throws leaves no write, no event, no dedup record; its retry commits them with the ack', async () => {
    const seen: { attempt: number; marked: boolean; rowsBefore: number[] }[] = [];
    const orders = subscription({
      name: 'kinds-tx',
      topics: ['kinds.tx'],
      transactional: true,
      backoff: { base: '1h', max: '1h' },
      handler: async (event, ctx) => {
        const rowsBefore = await effects(event.id);
        await ctx.tx`INSERT INTO effects (event_id, attempt) VALUES (${event.id}, ${ctx.attempt})`;
        await ctx.publish('kinds.tx.followup', { attempt: ctx.attempt });
        seen.push({ attempt: ctx.attempt, marked: await ctx.markProcessed(), rowsBefore });
        if (ctx.attempt === 1) throw new Error('failed after writing');
      },
    });
    const first = await publishAndDrain(db.sql, [orders], (tx) => crier.publish(tx, 'kinds.tx', { n: 1 }));
    assert.deepEqual([first.done, first.retried, first.dead], [0, 1, 0]);
    assert.equal(first.outcomes[0]!.error, 'failed after writing');
    const eventId = first.outcomes[0]!.eventId;
    assert.deepEqual(await effects(eventId), [], 'the write rolled back');
    assert.deepEqual(await followUps('kinds.tx.followup'), [], 'the published event rolled back');
    assert.equal(await processed('kinds-tx'), 0, 'the dedup record rolled back');

    await makeDue('kinds-tx');
    const second = await drain(db.sql, [orders]);
    assert.deepEqual([second.done, second.retried, second.dead], [1, 0, 0]);
    assert.deepEqual(seen, [
      { attempt: 1, marked: true, rowsBefore: [] },
      { attempt: 2, marked: true, rowsBefore: [] },
    ], 'the retry saw nothing of the first attempt, and markProcessed was not yet recorded');
    assert.deepEqual(await effects(eventId), [2]);
    assert.deepEqual((await followUps('kinds.tx.followup')).map((f) => f.payload), [{ attempt: 2 }]);
    assert.equal(await processed('kinds-tx'), 1);
    const [row] = await db.sql`SELECT state, attempts FROM crier.deliveries WHERE subscription = 'kinds-tx'`;
    assert.deepEqual({ ...row }, { state: 'done', attempts: 2 });
  });

  test('drain: a transactional handler that keeps throwing goes dead with nothing written', async () => {
    const doomed = subscription({
      name: 'kinds-tx-dead',
      topics: ['kinds.dead'],
      transactional: true,
      maxAttempts: 1,
      handler: async (event, ctx) => {
        await ctx.tx`INSERT INTO effects (event_id, attempt) VALUES (${event.id}, ${ctx.attempt})`;
        throw new Error('never works');
      },
    });
    await drain(db.sql, [doomed]); // declares the subscription, so the event fans out to it
    const event = await crier.publish(db.sql, 'kinds.dead', {});
    const result = await drain(db.url, [doomed]);
    assert.deepEqual(result.outcomes.map((o) => [o.eventId, o.outcome, o.error]), [[event.id, 'dead', 'never works']]);
    assert.deepEqual(await effects(event.id), []);
  });

  test('drain: markProcessed(ctx.tx) in a plain handler joins the caller\'s transaction; ctx.tx in a plain handler fails clearly', async () => {
    const results: boolean[] = [];
    const joined = subscription({
      name: 'kinds-plain-own-tx',
      topics: ['kinds.own'],
      handler: async (event, ctx) => {
        await db.sql.begin(async (tx) => {
          results.push(await ctx.markProcessed(tx));
          await tx`INSERT INTO effects (event_id, attempt) VALUES (${event.id}, ${ctx.attempt})`;
        });
        results.push(await ctx.markProcessed()); // already recorded: a redelivery would skip
      },
    });
    const misuse = subscription({
      name: 'kinds-plain-misuse',
      topics: ['kinds.own'],
      maxAttempts: 1,
      handler: async (_event, ctx) => ctx.tx`SELECT 1`,
    });
    const result = await publishAndDrain(db.sql, [joined, misuse], (tx) => crier.publish(tx, 'kinds.own', {}));
    assert.deepEqual(results, [true, false]);
    const bySubscription = Object.fromEntries(result.outcomes.map((o) => [o.subscription, [o.outcome, o.error]]));
    assert.deepEqual(bySubscription['kinds-plain-own-tx'], ['done', undefined]);
    assert.equal(bySubscription['kinds-plain-misuse']![0], 'dead');
    assert.match(bySubscription['kinds-plain-misuse']![1]!, /CRIER_INVALID_OPTION: ctx\.tx is only given to handlers of transactional subscriptions/);
  });
});
