// The operator API and the SQL behind it (db/sql/operator, db/sql/views.sql): views, requeue,
// replay, prune, pause/resume/remove, tail, and the auditing queries of docs/auditing.md.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { createAdmin, CrierError, toTime, type Admin } from '../src/index.ts';
import { createCrier } from './support/history.ts';
import { createTestDatabase, deliveryStates, eventually, type TestDatabase } from './support/database.ts';

const crier = createCrier();
let db: TestDatabase;
let admin: Admin;

before(async () => {
  db = await createTestDatabase('admin');
  admin = createAdmin({ connection: db.sql });
});
after(async () => {
  await admin.close();
  await db.drop();
});

async function subscribe(name: string, topics: string[], maxAttempts = 5) {
  await db.sql`INSERT INTO crier.subscriptions (name, topics, max_attempts) VALUES (${name}, ${topics}, ${maxAttempts})`;
}

async function publish(topic: string, count = 1, key?: string) {
  return db.sql.begin((tx) =>
    crier.publishMany(tx, Array.from({ length: count }, (_, n) => ({ topic, payload: { n }, key: key ?? null }))),
  );
}

/** Puts deliveries in a state as a worker would have left them. */
async function setState(ids: string[], state: 'dead' | 'done' | 'running' | 'pending', error = 'boom', attempts = 3) {
  await db.sql`
    UPDATE crier.deliveries
    SET state = ${state}, attempts = ${attempts}, last_error = ${state === 'done' ? null : error},
        finished_at = ${state === 'dead' || state === 'done' ? db.sql`now()` : null},
        worker = ${state === 'running' ? 'w1' : null},
        locked_until = ${state === 'running' ? db.sql`now() + interval '1 hour'` : null}
    WHERE id = ANY (${ids}::bigint[])`;
}

async function deliveriesOf(eventIds: string[], subscription: string) {
  const rows = await db.sql`
    SELECT id::text AS delivery_id FROM crier.deliveries WHERE event_id = ANY (${eventIds}::bigint[]) AND subscription = ${subscription} ORDER BY id`;
  return rows.map((r) => r.delivery_id as string);
}

async function rejects(promise: Promise<unknown>, code: string, message?: RegExp) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof CrierError, `expected a CrierError, got ${String(error)}`);
    assert.equal(error.code, code);
    if (message) assert.match(error.message, message);
    return true;
  });
}

describe('views', () => {
  test('event_history, dead_letters and subscription_stats tell one story', async () => {
    await subscribe('v-billing', ['v.order.created']);
    await subscribe('v-mail', ['v.order.#']);
    const [created] = await publish('v.order.created', 1, '42');
    await publish('v.nobody');
    const [billing, mail] = [await deliveriesOf([created!.id], 'v-billing'), await deliveriesOf([created!.id], 'v-mail')];
    await setState(billing, 'dead', 'card declined', 5);

    const history = await db.sql`SELECT subscription, state, status, attempts, last_error FROM crier.event_history WHERE event_id = ${created!.id} ORDER BY subscription`;
    assert.deepEqual(history.map((r) => ({ ...r })), [
      { subscription: 'v-billing', state: 'dead', status: 'dead', attempts: 5, last_error: 'card declined' },
      { subscription: 'v-mail', state: 'pending', status: 'pending', attempts: 0, last_error: null },
    ]);
    const [lonely] = await db.sql`SELECT delivery_id, subscription FROM crier.event_history WHERE topic = 'v.nobody'`;
    assert.deepEqual({ ...lonely }, { delivery_id: null, subscription: null }, 'an event nobody received still appears');

    const dead = await db.sql`SELECT delivery_id::text, event_id::text, topic, key, last_error FROM crier.dead_letters WHERE subscription = 'v-billing'`;
    assert.deepEqual(dead.map((r) => ({ ...r })), [{ delivery_id: billing[0], event_id: created!.id, topic: 'v.order.created', key: '42', last_error: 'card declined' }]);

    await setState(mail, 'pending', 'timeout', 1); // a retry waiting
    const stats = await admin.stats();
    const mailStats = stats.find((s) => s.subscription === 'v-mail')!;
    assert.equal(mailStats.retrying, 1);
    assert.equal(mailStats.pending, 0);
    assert.ok(mailStats.lagSeconds !== null && mailStats.lagSeconds >= 0);
    const billingStats = stats.find((s) => s.subscription === 'v-billing')!;
    assert.deepEqual(
      { pending: billingStats.pending, dead: billingStats.dead, lag: billingStats.lagSeconds, paused: billingStats.paused },
      { pending: 0, dead: 1, lag: null, paused: false },
    );
  });

  test('subscription_stats only gains columns at the end (SELECT * users keep their positions)', async () => {
    const columns = await db.sql`
      SELECT column_name FROM information_schema.columns
      WHERE table_schema = 'crier' AND table_name = 'subscription_stats' ORDER BY ordinal_position`;
    assert.deepEqual(columns.map((c) => c.column_name), [
      'subscription', 'topics', 'paused', 'pending', 'running', 'retrying', 'dead', 'done', 'oldest_pending_at', 'lag',
      'lag_seconds', // 0002
      'waiting', 'blocked_keys', // 0008
      'live_workers', 'stuck', 'stuck_since', 'stuck_seconds', // workers (0002_workers)
      'history', // 0004_history
    ]);
    await db.sql`INSERT INTO crier.subscriptions (name, topics, ordered) VALUES ('v-ordered', '{v.ordered}', true)`;
    const [first] = await publish('v.ordered', 2, 'k');
    assert.deepEqual(await deliveryStates(db.sql, 'v-ordered'), { pending: 1, waiting: 1 });
    await db.sql`UPDATE crier.deliveries SET state = 'dead', finished_at = now() WHERE subscription = 'v-ordered' AND event_id = ${first!.id}`;
    const [stats] = await admin.stats('v-ordered');
    assert.deepEqual({ dead: stats!.dead, waiting: stats!.waiting, blockedKeys: stats!.blockedKeys }, { dead: 1, waiting: 1, blockedKeys: 1 });
    await admin.removeSubscription('v-ordered', { force: true }); // leave no dead delivery for later tests
  });

  test('dead list: most recently dead first, then by id as a number', async () => {
    await subscribe('v-many', ['v.many']);
    const events = await publish('v.many', 12);
    await setState(await deliveriesOf(events.map((e) => e.id), 'v-many'), 'dead'); // one statement: same died_at
    const listed: number[] = [];
    for await (const d of admin.listDead({ subscription: 'v-many' })) listed.push(Number(d.deliveryId));
    assert.equal(listed.length, 12);
    assert.deepEqual(listed, [...listed].sort((a, b) => b - a));
    const limited = [];
    for await (const d of admin.listDead({ subscription: 'v-many', error: 'BOOM' }, 5)) limited.push(d);
    assert.equal(limited.length, 5);
  });

  test('the auditing queries in docs/auditing.md run', async () => {
    const doc = readFileSync(new URL('../docs/auditing.md', import.meta.url), 'utf8');
    const queries = [...doc.matchAll(/```sql\n([\s\S]*?)```/g)].map((m) => m[1]!);
    assert.ok(queries.length >= 5, `found ${queries.length} queries`);
    const rollback = new Error('rollback');
    for (const text of queries) {
      // Documented queries are read-only; each runs in a transaction rolled back anyway.
      await db.sql
        .begin(async (tx) => {
          await tx.unsafe(text);
          throw rollback;
        })
        .catch((error) => {
          if (error !== rollback) assert.fail(`query failed: ${error.message}\n${text}`);
        });
    }
  });
});

describe('requeue', () => {
  test('by ids: only dead deliveries move, attempts reset, due now, errors kept; others are reported untouched', async () => {
    await subscribe('rq-ids', ['rq.ids']);
    const events = await publish('rq.ids', 4);
    const [dead1, dead2, done, running] = await deliveriesOf(events.map((e) => e.id), 'rq-ids');
    await setState([dead1!, dead2!], 'dead', 'boom', 5);
    await setState([done!], 'done');
    await setState([running!], 'running', 'x', 1);
    const before = await db.sql`SELECT id::text, state, attempts, updated_at FROM crier.deliveries WHERE id = ANY (${[done!, running!]}::bigint[]) ORDER BY id`;

    const result = await admin.requeue({ deliveryIds: [dead1!, done!, running!] });
    assert.equal(result.count, 1);
    assert.deepEqual(result.bySubscription, { 'rq-ids': 1 });
    assert.deepEqual(result.skipped, [
      { deliveryId: done!, state: 'done' },
      { deliveryId: running!, state: 'running' },
    ]);
    const [moved] = await db.sql`
      SELECT state, attempts, worker, finished_at, last_error, available_at <= now() AS due, errors->-1 AS note
      FROM crier.deliveries WHERE id = ${dead1!}`;
    assert.deepEqual(
      { state: moved!.state, attempts: moved!.attempts, worker: moved!.worker, finished_at: moved!.finished_at, last_error: moved!.last_error, due: moved!.due },
      { state: 'pending', attempts: 0, worker: null, finished_at: null, last_error: 'boom', due: true },
    );
    assert.equal(moved!.note.attempts_before, 5);
    const afterRows = await db.sql`SELECT id::text, state, attempts, updated_at FROM crier.deliveries WHERE id = ANY (${[done!, running!]}::bigint[]) ORDER BY id`;
    assert.deepEqual(afterRows.map((r) => ({ ...r })), before.map((r) => ({ ...r })), 'done and running rows untouched');
    const [still] = await db.sql`SELECT state FROM crier.deliveries WHERE id = ${dead2!}`;
    assert.equal(still!.state, 'dead', 'a dead delivery not named stays dead');
  });

  test('by filters, dry run first; a filter matching nothing moves nothing', async () => {
    await subscribe('rq-f1', ['rq.f.#']);
    await subscribe('rq-f2', ['rq.f.#']);
    const events = await publish('rq.f.a', 3);
    const other = await publish('rq.f.b', 2);
    const f1 = await deliveriesOf(events.map((e) => e.id), 'rq-f1');
    const f2 = await deliveriesOf(events.map((e) => e.id), 'rq-f2');
    const f1b = await deliveriesOf(other.map((e) => e.id), 'rq-f1');
    await setState([f1[0]!, f1[1]!], 'dead', 'Timeout after 30s');
    await setState([f1[2]!], 'dead', 'card declined');
    await setState(f2, 'dead', 'timeout');
    await setState(f1b, 'dead', 'timeout');

    const dry = await admin.requeue({ subscription: 'rq-f1', error: 'TIMEOUT', topic: 'rq.f.a' }, { dryRun: true });
    assert.equal(dry.count, 2);
    assert.equal(dry.dryRun, true);
    assert.deepEqual(dry.sample.map((d) => d.deliveryId), [f1[0], f1[1]]);
    assert.equal((await deliveryStates(db.sql, 'rq-f1')).dead, 5, 'a dry run changes nothing');

    const real = await admin.requeue({ subscription: 'rq-f1', error: 'TIMEOUT', topic: 'rq.f.a' }, { batchSize: 1 });
    assert.equal(real.count, 2, 'batches of one add up');
    assert.deepEqual(await deliveryStates(db.sql, 'rq-f1'), { pending: 2, dead: 3 });
    assert.deepEqual(await deliveryStates(db.sql, 'rq-f2'), { dead: 3, pending: 2 }, 'other subscriptions untouched');

    const none = await admin.requeue({ subscription: 'rq-f1', error: 'no such error' });
    assert.equal(none.count, 0);

    const future = await admin.requeue({ subscription: 'rq-f2', since: toTime('1h'), until: toTime('2099-01-01') });
    assert.equal(future.count, 3);
    const byEvent = await admin.requeue({ events: [other[0]!.uuid] });
    assert.deepEqual(byEvent.sample.map((d) => d.deliveryId), [f1b[0]]);
  });

  test('all dead, from SQL too; bad selections are clear errors', async () => {
    await subscribe('rq-all', ['rq.all']);
    const events = await publish('rq.all', 3);
    await setState(await deliveriesOf(events.map((e) => e.id), 'rq-all'), 'dead');
    const [{ n }] = (await db.sql`SELECT count(*)::int AS n FROM crier.requeue(p_all_dead => true)`) as unknown as [{ n: number }];
    assert.ok(n >= 3);
    assert.equal((await deliveryStates(db.sql)).dead, undefined, 'nothing dead is left');

    await rejects(db.sql`SELECT * FROM crier.requeue()`.then(() => {}).catch((e) => { throw fromSql(e); }), 'CRIER_INVALID_OPTION');
    await rejects(admin.requeue({}), 'CRIER_INVALID_OPTION');
    await rejects(admin.requeue({ allDead: true, subscription: 'rq-all' }), 'CRIER_INVALID_OPTION');
    await rejects(admin.requeue({ deliveryIds: ['999999'] }), 'CRIER_UNKNOWN_DELIVERY', /999999/);
    await rejects(admin.requeue({ events: ['999999'] }), 'CRIER_UNKNOWN_EVENT', /999999/);
    await rejects(admin.requeue({ deliveryIds: ['abc'] }), 'CRIER_INVALID_OPTION');
    await rejects(admin.requeue({ subscription: 'rq-al' }), 'CRIER_UNKNOWN_SUBSCRIPTION', /did you mean "rq-all"\?/);
    await rejects(admin.requeue({ topic: 'rq..x' }), 'CRIER_INVALID_PATTERN');
  });

  test('while a worker runs: every requeued delivery is done exactly once, with its subscription\'s policies', async () => {
    let healthy = false;
    const handled = new Map<string, { ok: number; failed: number }>();
    const worker = crier.worker({
      connection: db.url,
      handleSignals: false,
      logger: false,
      pollInterval: 200,
      subscriptions: [{
        name: 'rq-live',
        topics: ['rq.live'],
        maxAttempts: 2,
        backoff: { base: 1, max: 2 },
        handler: async (event) => {
          const h = handled.get(event.id) ?? { ok: 0, failed: 0 };
          handled.set(event.id, h);
          if (!healthy) {
            h.failed++;
            throw new Error('downstream is down');
          }
          h.ok++;
        },
      }],
    });
    await worker.start();
    try {
      const events = await publish('rq.live', 30);
      await eventually(async () => (await deliveryStates(db.sql, 'rq-live')).dead === 30, 20_000, '30 dead after 2 attempts each');
      for (const event of events) assert.equal(handled.get(event.id)?.failed, 2);

      // Requeue half while still broken: the policy (2 attempts) applies again, and they die again.
      const firstHalf = await deliveriesOf(events.slice(0, 15).map((e) => e.id), 'rq-live');
      assert.equal((await admin.requeue({ deliveryIds: firstHalf })).count, 15);
      await eventually(async () => (await deliveryStates(db.sql, 'rq-live')).dead === 30, 20_000, 'requeued ones dead again');
      for (const event of events.slice(0, 15)) assert.equal(handled.get(event.id)?.failed, 4);

      healthy = true;
      const result = await admin.requeue({ subscription: 'rq-live' }, { batchSize: 7 });
      assert.equal(result.count, 30);
      await eventually(async () => (await deliveryStates(db.sql, 'rq-live')).done === 30, 20_000, 'all done');
      for (const event of events) assert.equal(handled.get(event.id)?.ok, 1, `event ${event.id} handled successfully once`);
    } finally {
      await worker.stop();
    }
  });
});

describe('replay', () => {
  test('queues past events again, skipping those still pending, never twice under concurrent replays', async () => {
    await subscribe('rp', ['rp.order.#']);
    const first = await publish('rp.order.created', 4);
    await publish('rp.unrelated', 2); // outside the subscription's patterns
    const ids = await deliveriesOf(first.map((e) => e.id), 'rp');
    await setState(ids.slice(0, 3), 'done');
    // ids[3] is still pending

    const dry = await admin.replay({ subscription: 'rp', from: first[0]!.id, dryRun: true });
    assert.deepEqual({ queued: dry.queued, skipped: dry.skipped }, { queued: 3, skipped: 1 });
    assert.equal((await deliveriesOf(first.map((e) => e.id), 'rp')).length, 4, 'dry run queued nothing');

    const results = await Promise.all([
      admin.replay({ subscription: 'rp', from: first[0]!.id, batchSize: 2 }),
      admin.replay({ subscription: 'rp', from: first[0]!.id, batchSize: 2 }),
    ]);
    assert.equal(results[0]!.queued + results[1]!.queued, 3, 'each event queued by one replay only');
    const [{ busy }] = (await db.sql`
      SELECT count(*)::int AS busy FROM (
        SELECT event_id FROM crier.deliveries WHERE subscription = 'rp' AND state IN ('pending', 'running')
        GROUP BY event_id HAVING count(*) > 1) x`) as unknown as [{ busy: number }];
    assert.equal(busy, 0, 'no event has two pending deliveries for the subscription');
    assert.equal((await deliveriesOf(first.map((e) => e.id), 'rp')).length, 7, 'history keeps the done deliveries');

    const narrowed = await admin.replay({ subscription: 'rp', from: toTime('1h'), topic: 'rp.order.shipped', dryRun: true });
    assert.deepEqual({ queued: narrowed.queued, skipped: narrowed.skipped }, { queued: 0, skipped: 0 });
    await rejects(admin.replay({ subscription: 'rpp', from: '1' }), 'CRIER_UNKNOWN_SUBSCRIPTION', /did you mean "rp"/);
    await rejects(admin.replay({ subscription: 'rp', from: 'yesterday' }), 'CRIER_INVALID_OPTION');
  });
});

describe('prune', () => {
  // Prune walks ids in order and stops at the first batch newer than the cutoff (ids grow with
  // time), so its rows must be the oldest: a database of its own, with history made old.
  let own: TestDatabase;
  const saved = { db: undefined as TestDatabase | undefined, admin: undefined as Admin | undefined };
  before(async () => {
    own = await createTestDatabase('prune');
    Object.assign(saved, { db, admin });
    db = own;
    admin = createAdmin({ connection: own.sql });
  });
  after(async () => {
    await admin.close();
    db = saved.db!;
    admin = saved.admin!;
    await own.drop();
  });

  test('deletes old finished deliveries in batches, never pending ones; events only when unreferenced', async () => {
    await subscribe('pr', ['pr.x']);
    const events = await publish('pr.x', 10);
    const ids = await deliveriesOf(events.map((e) => e.id), 'pr');
    await setState(ids.slice(0, 6), 'done');
    await setState(ids.slice(6, 8), 'dead');
    // ids 8, 9 stay pending
    await db.sql`UPDATE crier.deliveries SET created_at = now() - interval '10 days', finished_at = CASE WHEN finished_at IS NOT NULL THEN now() - interval '9 days' END WHERE id = ANY (${ids}::bigint[])`;
    await db.sql`UPDATE crier.events SET created_at = now() - interval '10 days' WHERE id = ANY (${events.map((e) => e.id)}::bigint[])`;

    const dry = await admin.prune({ olderThan: '7d', dryRun: true, batchSize: 3 });
    assert.equal(dry.deliveries, 6);
    assert.equal((await deliveryStates(db.sql, 'pr')).done, 6, 'dry run deletes nothing');

    const kept = await admin.prune({ olderThan: '30d', batchSize: 3 });
    assert.equal(kept.deliveries, 0, 'nothing is that old');

    const done = await admin.prune({ olderThan: '7d', batchSize: 3 });
    assert.equal(done.deliveries, 6);
    assert.ok(done.batches >= 3, `walked in batches (${done.batches})`);
    assert.deepEqual(await deliveryStates(db.sql, 'pr'), { dead: 2, pending: 2 });

    const withDead = await admin.prune({ olderThan: '7d', dead: true, events: true, batchSize: 4 });
    assert.equal(withDead.deliveries, 2);
    assert.equal(withDead.events, 8, 'the 8 events whose deliveries are gone');
    assert.deepEqual(await deliveryStates(db.sql, 'pr'), { pending: 2 });
    const [{ left }] = (await db.sql`SELECT count(*)::int AS left FROM crier.events WHERE id = ANY (${events.map((e) => e.id)}::bigint[])`) as unknown as [{ left: number }];
    assert.equal(left, 2, 'events with pending deliveries stay');

    await rejects(admin.prune({ olderThan: 'a week' }), 'CRIER_INVALID_OPTION');
    const [call] = await db.sql`CALL crier.prune(interval '7 days', true, true, 2)`;
    assert.deepEqual({ ...call }, { deleted_deliveries: '0', deleted_events: '0' });
  });
});

describe('subscriptions', () => {
  test('pause stops claims, resume restarts them, remove refuses with pending work unless forced', async () => {
    await subscribe('sub-ops', ['sub.ops']);
    await publish('sub.ops', 2);
    assert.equal(await admin.pause('sub-ops'), true);
    assert.equal(await admin.pause('sub-ops'), false, 'pausing twice changes nothing');
    const claimed = await db.sql`SELECT * FROM crier.claim('sub-ops', 'w', 10)`;
    assert.equal(claimed.length, 0, 'a paused subscription hands out nothing');
    assert.equal((await admin.stats('sub-ops'))[0]!.paused, true);
    assert.equal(await admin.resume('sub-ops'), true);
    const [one] = await db.sql`SELECT delivery_id::text FROM crier.claim('sub-ops', 'w', 1)`;
    assert.ok(one, 'claims again after resume');

    await rejects(admin.removeSubscription('sub-ops'), 'CRIER_SUBSCRIPTION_BUSY', /1 pending and 1 running/);
    assert.equal((await admin.listSubscriptions()).some((s) => s.name === 'sub-ops'), true, 'refused: still there');
    assert.equal(await admin.removeSubscription('sub-ops', { force: true }), 2);
    assert.equal((await admin.listSubscriptions()).some((s) => s.name === 'sub-ops'), false);
    assert.deepEqual(await deliveryStates(db.sql, 'sub-ops'), {});

    await rejects(admin.pause('sub-opz'), 'CRIER_UNKNOWN_SUBSCRIPTION');
    await subscribe('inventory', ['inv.#']);
    await rejects(admin.resume('invntory'), 'CRIER_UNKNOWN_SUBSCRIPTION', /no subscription "invntory"; did you mean "inventory"\?/);
    await rejects(admin.stats('zzzzzzzzzzzz'), 'CRIER_UNKNOWN_SUBSCRIPTION', /known subscriptions: /);
  });

  test('declared ahead: an event published before any worker ever ran is delivered once one starts', async () => {
    assert.deepEqual(
      await admin.createSubscription({ name: 'ahead', topics: ['ahead.#'], maxAttempts: 3 }),
      { subscription: 'ahead', outcome: 'created' },
    );
    const [early] = await publish('ahead.placed');
    const warnings: string[] = [];
    const handled: { id: string; maxAttempts: number }[] = [];
    const worker = crier.worker({
      connection: db.url,
      handleSignals: false,
      logger: { info() {}, warn: (m) => void warnings.push(m), error() {} },
      subscriptions: [{
        name: 'ahead', topics: ['ahead.#', 'other.#'], handler: (event, ctx) => void handled.push({ id: event.id, maxAttempts: ctx.maxAttempts }),
      }],
    });
    await worker.start();
    try {
      await eventually(() => handled.length === 1, 10_000, 'the early event handled');
    } finally {
      await worker.stop();
    }
    assert.deepEqual(handled, [{ id: early!.id, maxAttempts: 3 }], 'handled once, with the declared policy');
    // The worker adopted the declared subscription, and said how its own options differ.
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /"ahead" .*runs as declared: topics \["ahead\.#"\] \(declared\) vs \["ahead\.#","other\.#"\] \(this worker\)/);
    const [stored] = await db.sql`SELECT topics, max_attempts FROM crier.subscriptions WHERE name = 'ahead'`;
    assert.deepEqual({ ...stored }, { topics: ['ahead.#'], max_attempts: 3 });
  });

  test('create: idempotent, changes only what is given, backfills from history, refuses bad input', async () => {
    await publish('fill.old', 2);
    const since = new Date(Date.now() - 60_000);
    const created = await admin.createSubscription({ name: 'fill', topics: ['fill.#'], lease: '10s', from: since });
    assert.equal(created.outcome, 'created');
    assert.equal(created.backfill!.queued, 2, 'the two earlier events are queued');
    assert.equal((await deliveryStates(db.sql, 'fill')).pending, 2);
    assert.equal((await admin.createSubscription({ name: 'fill', topics: ['fill.#'] })).outcome, 'unchanged');
    assert.equal((await admin.createSubscription({ name: 'fill', topics: ['fill.#'], maxAttempts: 9 })).outcome, 'updated');
    const [row] = await db.sql`SELECT topics, max_attempts, lease_ms, backoff_base_ms, ordered FROM crier.subscriptions WHERE name = 'fill'`;
    assert.deepEqual({ ...row }, { topics: ['fill.#'], max_attempts: 9, lease_ms: 10_000, backoff_base_ms: 1000, ordered: false }, 'the lease given earlier stays');
    // From SQL, as a user's own migration would.
    assert.equal((await db.sql`SELECT crier.create_subscription('fill', '{fill.#,refill.#}', p_ordered => true) AS o`)[0]!.o, 'updated');
    assert.deepEqual((await admin.listSubscriptions()).find((s) => s.name === 'fill')!.topics, ['fill.#', 'refill.#']);

    await rejects(admin.createSubscription({ name: 'bad name!', topics: ['x'] }), 'CRIER_INVALID_OPTION', /subscription name "bad name!" is not valid/);
    await rejects(admin.createSubscription({ name: 'x', topics: ['a..b'] }), 'CRIER_INVALID_PATTERN');
    await rejects(admin.createSubscription({ name: 'x', topics: [] }), 'CRIER_INVALID_OPTION', /topics must be a non-empty array/);
    await assert.rejects(db.sql`SELECT crier.create_subscription('x', '{}')`, /CRIER_INVALID_OPTION: subscription 'x': topics must be a non-empty array/);
    await assert.rejects(db.sql`SELECT crier.create_subscription('x', '{x}', p_lease_ms => 5)`, /CRIER_INVALID_OPTION: subscription 'x': the lease must be at least 100 ms/);
    await assert.rejects(db.sql`SELECT crier.create_subscription('fill', '{x}', p_backoff_base_ms => 900000)`, /CRIER_INVALID_OPTION: subscription 'fill': backoff must be 0 <= base <= max/);
    assert.equal((await db.sql`SELECT count(*)::int AS n FROM crier.subscriptions WHERE name = 'x'`)[0]!.n, 0, 'nothing was written');
  });
});

describe('events', () => {
  test('list filters and streams; show has every delivery; unknown ids are clear errors', async () => {
    await subscribe('ev-a', ['ev.#']);
    await subscribe('ev-b', ['ev.order.*']);
    const [order] = await publish('ev.order.created', 1, 'order-42');
    await publish('ev.user.created', 3, 'user-1');

    const listed = [];
    for await (const e of admin.listEvents({ topic: 'ev.#' })) listed.push(e);
    assert.deepEqual(listed.map((e) => e.topic), ['ev.user.created', 'ev.user.created', 'ev.user.created', 'ev.order.created'], 'newest first');
    const byKey = [];
    for await (const e of admin.listEvents({ key: 'order-42', order: 'asc', since: toTime('1h') })) byKey.push(e);
    assert.deepEqual(byKey.map((e) => ({ id: e.id, deliveries: e.deliveries })), [{ id: order!.id, deliveries: { pending: 2 } }]);
    const limited = [];
    for await (const e of admin.listEvents({ topic: 'ev.#', limit: 2 })) limited.push(e);
    assert.equal(limited.length, 2);

    const shown = await admin.getEvent(order!.uuid);
    assert.equal(shown.event.id, order!.id);
    assert.deepEqual(shown.deliveries.map((d) => d.subscription), ['ev-a', 'ev-b']);
    assert.deepEqual((await admin.getEvent(order!.id)).event.payload, { n: 0 });

    await rejects(admin.getEvent('999999'), 'CRIER_UNKNOWN_EVENT');
    await rejects(admin.getEvent('not-an-id'), 'CRIER_INVALID_OPTION');
    await rejects(admin.getDelivery('999999'), 'CRIER_UNKNOWN_DELIVERY');
    await rejects((async () => { for await (const _ of admin.listEvents({ topic: 'a..b' })) { /* none */ } })(), 'CRIER_INVALID_PATTERN');
  });

  test('tail shows events that commit after a later id was already shown (even from before it started), once', async () => {
    const early = await db.sql.reserve();
    const slow = await db.sql.reserve();
    const controller = new AbortController();
    const seen: string[] = [];
    let tail: Promise<void> | undefined;
    try {
      await early`BEGIN`;
      await early`SELECT crier.publish('tail.early', '{}')`; // running before the tail starts...
      await publish('tail.before'); // ...below an id committed before it started (not shown)
      let started!: () => void;
      const ready = new Promise<void>((resolve) => (started = resolve));
      tail = (async () => {
        for await (const e of admin.tailEvents({ topic: 'tail.#', intervalMs: 20, signal: controller.signal, onStart: () => started() })) {
          seen.push(e.topic);
        }
      })();
      await ready;
      await slow`BEGIN`;
      await slow`SELECT crier.publish('tail.slow', '{}')`; // takes a lower id than fast, commits after it
      await publish('tail.fast');
      await eventually(() => seen.includes('tail.fast'), 5000, 'the fast event');
      await slow`COMMIT`;
      await eventually(() => seen.includes('tail.slow'), 5000, 'the event that committed out of order');
      await early`COMMIT`;
      await eventually(() => seen.includes('tail.early'), 5000, 'the event begun before the tail started');
      await publish('tail.last');
      await eventually(() => seen.includes('tail.last'), 5000, 'a later event');
    } finally {
      early.release();
      slow.release();
      controller.abort();
      await tail;
    }
    assert.deepEqual(seen, ['tail.fast', 'tail.slow', 'tail.early', 'tail.last']);
  });
});

test('times and durations as operators write them', () => {
  const now = new Date('2026-05-02T00:00:00Z');
  assert.equal(toTime('24h', 'since', now).toISOString(), '2026-05-01T00:00:00.000Z');
  assert.equal(toTime('30m', 'since', now).toISOString(), '2026-05-01T23:30:00.000Z');
  assert.equal(toTime('7d', 'since', now).toISOString(), '2026-04-25T00:00:00.000Z');
  assert.equal(toTime('2026-04-01T12:00:00Z').toISOString(), '2026-04-01T12:00:00.000Z');
  assert.throws(() => toTime('yesterday', '--since'), /CRIER_INVALID_OPTION: --since: "yesterday" is not a time/);
  assert.throws(() => toTime('2026-13-45'), /CRIER_INVALID_OPTION/);
});

function fromSql(error: unknown) {
  const match = /^(CRIER_[A-Z_]+): (.*)$/s.exec((error as Error).message);
  return match ? new CrierError(match[1] as never, match[2]!) : error;
}
