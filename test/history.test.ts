// A subscription's history choice (SubscriptionSpec.history, crier.subscriptions.history):
// 'full' keeps every delivery's row; 'failures' deletes, at its ack (crier.complete), a delivery
// that succeeded at its first attempt, and keeps the rest (retried, rescued, requeued, dead) with
// their errors. The events stay in the log either way, so replay works from it; an ordered key moves
// on when its head is deleted rather than marked done.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  createAdmin,
  UnrecoverableError,
  type CrierEvent,
  type SubscriptionDefinition,
  type SubscriptionHistory,
} from '../src/index.ts';
import { createCrier } from './support/history.ts';
import { runCli } from './support/cli.ts';
import { createTestDatabase, deliveryStates, eventually, type TestDatabase } from './support/database.ts';

const crier = createCrier();
let db: TestDatabase;
let admin: ReturnType<typeof createAdmin>;
before(async () => {
  db = await createTestDatabase('history');
  admin = createAdmin({ connection: db.sql });
  await db.sql`CREATE TABLE effects (event_id bigint NOT NULL, attempt int NOT NULL)`;
});
after(async () => {
  await db.drop();
});

function startWorker(...subscriptions: SubscriptionDefinition[]) {
  return crier.worker({ connection: db.url, handleSignals: false, logger: false, pollInterval: '100ms', subscriptions }).start();
}

/** Deliveries of a subscription that are not finished (none once it drained). */
async function unfinished(subscription: string): Promise<number> {
  const [row] = await db.sql`
    SELECT count(*)::int AS n FROM crier.deliveries WHERE subscription = ${subscription} AND state NOT IN ('done', 'dead')`;
  return row!.n;
}

const rowsOf = (subscription: string) => db.sql`
  SELECT e.topic, d.state, d.attempts, jsonb_array_length(d.errors)::int AS errors
  FROM crier.deliveries d JOIN crier.events e ON e.id = d.event_id
  WHERE d.subscription = ${subscription} ORDER BY e.id`;

describe('the lifecycle under each history choice', () => {
  for (const history of ['full', 'failures'] as const) {
    test(`${history}: successes ${history === 'full' ? 'keep their rows' : 'leave no row'}; retried and dead deliveries keep theirs, with their errors`, async () => {
      const name = `life-${history}`;
      const handled = new Map<string, number>();
      const worker = await startWorker({
        name,
        topics: [`${name}.#`],
        history,
        maxAttempts: 3,
        backoff: { base: 10, max: 20 },
        handler: async (event: CrierEvent<{ mode: string }>, ctx) => {
          handled.set(event.id, (handled.get(event.id) ?? 0) + 1);
          if (event.payload.mode === 'flaky' && ctx.attempt < 2) throw new Error('flaky: not yet');
          if (event.payload.mode === 'broken') throw new Error('broken for good');
          if (event.payload.mode === 'hopeless') throw new UnrecoverableError('cannot ever work');
        },
      });
      try {
        const published = await db.sql.begin((tx) =>
          crier.publishMany(tx, [
            ...Array.from({ length: 10 }, (_, n) => ({ topic: `${name}.ok`, payload: { mode: 'ok', n } })),
            ...['flaky', 'broken', 'hopeless'].map((mode) => ({ topic: `${name}.${mode}`, payload: { mode } })),
          ]),
        );
        await eventually(async () => handled.size === 13 && (await unfinished(name)) === 0, 15_000, 'every delivery finished');
        const ok = published.filter((e) => e.topic === `${name}.ok`);
        for (const event of ok) assert.equal(handled.get(event.id), 1, 'each success handled once');

        const kept = (await rowsOf(name)).map((r) => ({ ...r }));
        const failures = [
          { topic: `${name}.flaky`, state: 'done', attempts: 2, errors: 1 },
          { topic: `${name}.broken`, state: 'dead', attempts: 3, errors: 3 },
          { topic: `${name}.hopeless`, state: 'dead', attempts: 1, errors: 1 },
        ];
        const successes = ok.map(() => ({ topic: `${name}.ok`, state: 'done', attempts: 1, errors: 0 }));
        assert.deepEqual(kept, history === 'full' ? [...successes, ...failures] : failures);

        // The events all stay in the log, and the audit face says what was kept.
        const [log] = await db.sql`SELECT count(*)::int AS n FROM crier.events WHERE topic LIKE ${`${name}.%`}`;
        assert.equal(log!.n, 13);
        const [audit] = await db.sql`
          SELECT count(*) FILTER (WHERE delivery_id IS NULL)::int AS without_row, count(*) FILTER (WHERE status = 'done')::int AS done
          FROM crier.event_history WHERE topic LIKE ${`${name}.%`}`;
        assert.deepEqual({ ...audit }, history === 'full' ? { without_row: 0, done: 11 } : { without_row: 10, done: 1 });
        const dead = await db.sql`SELECT topic, last_error FROM crier.dead_letters WHERE subscription = ${name} ORDER BY topic`;
        assert.deepEqual(dead.map((r) => r.last_error), ['broken for good', 'UnrecoverableError: cannot ever work']);
        const [stats] = await admin.stats(name);
        assert.deepEqual(
          { done: stats!.done, dead: stats!.dead, history: stats!.history },
          { done: history === 'full' ? 11 : 1, dead: 2, history },
        );
        const shown = await admin.getEvent(ok[0]!.id);
        assert.deepEqual(
          { deliveries: shown.deliveries.map((d) => d.state), unrecorded: shown.unrecorded },
          history === 'full' ? { deliveries: ['done'], unrecorded: [] } : { deliveries: [], unrecorded: [name] },
        );
        const flaky = await admin.getEvent(published.find((e) => e.topic === `${name}.flaky`)!.id);
        assert.deepEqual({ deliveries: flaky.deliveries.map((d) => d.errors.length), unrecorded: flaky.unrecorded }, { deliveries: [1], unrecorded: [] });
      } finally {
        await worker.stop();
      }
    });
  }
});

describe("history 'failures'", () => {
  test('crier.complete deletes only first-attempt successes, returns every completed id, and refuses a stale ack', async () => {
    await admin.createSubscription({ name: 'acks', topics: ['acks.#'], history: 'failures' });
    await db.sql.begin((tx) => crier.publishMany(tx, Array.from({ length: 4 }, (_, n) => ({ topic: 'acks.x', payload: { n } }))));
    const claimed = await db.sql`SELECT delivery_id::text AS id, attempt FROM crier.claim('acks', 'w1', 4) ORDER BY delivery_id`;
    const [first, second, third, fourth] = claimed.map((r) => r.id as string);
    // The second fails once and comes back; the third loses its lease (rescued: an error recorded).
    await db.sql`SELECT crier.fail('w1', ${`{${second}}`}::bigint[], '{1}'::int[], '{boom}'::text[], '{NULL}'::text[], '{f}'::boolean[], '{0}'::int[])`;
    await db.sql`UPDATE crier.deliveries SET locked_until = now() - interval '1 s' WHERE id = ${third!}`;
    await db.sql`SELECT crier.rescue_expired()`;
    const again = await db.sql`SELECT delivery_id::text AS id, attempt FROM crier.claim('acks', 'w2', 4) ORDER BY delivery_id`;
    assert.deepEqual(again.map((r) => [r.id, r.attempt]), [[second, 2], [third, 2]]);
    // w1's ack of the third (its lease lost) is refused; w1's first and fourth, and w2's, complete.
    const byW1 = await db.sql`SELECT id::text FROM crier.complete('w1', ${`{${first},${third},${fourth}}`}::bigint[], '{1,1,1}'::int[]) AS id`;
    assert.deepEqual(byW1.map((r) => r.id).sort(), [first, fourth].sort());
    const byW2 = await db.sql`SELECT id::text FROM crier.complete('w2', ${`{${second},${third}}`}::bigint[], '{2,2}'::int[]) AS id`;
    assert.deepEqual(byW2.map((r) => r.id).sort(), [second, third].sort());
    const rows = await db.sql`SELECT id::text, state, attempts FROM crier.deliveries WHERE subscription = 'acks' ORDER BY id`;
    assert.deepEqual(rows.map((r) => ({ ...r })), [
      { id: second, state: 'done', attempts: 2 },
      { id: third, state: 'done', attempts: 2 },
    ]);
  });

  test('ordered, random failures: every key in publish order, nothing lost, keys go idle, only retried deliveries kept', async () => {
    const keys = Array.from({ length: 12 }, (_, i) => `k${i}`);
    const perKey = 15;
    const handled = new Map<string, number[]>(keys.map((k) => [k, []]));
    const active = new Set<string>();
    const violations: string[] = [];
    let failures = 0;
    const worker = await startWorker({
      name: 'ordered-failures',
      topics: ['ordf.#'],
      ordered: true,
      history: 'failures',
      concurrency: 8,
      maxAttempts: 30,
      backoff: { base: 1, max: 5 },
      handler: async (event: CrierEvent<{ key: string; n: number }>) => {
        const { key, n } = event.payload;
        const done = handled.get(key)!;
        if (active.has(key)) violations.push(`${key}/${n} started while another of its key ran`);
        if (done.length !== n) violations.push(`${key}/${n} started after ${done.length} were done`);
        active.add(key);
        try {
          await new Promise((resolve) => setTimeout(resolve, Math.random() * 2));
          if (Math.random() < 0.2) {
            failures++;
            throw new Error(`random failure of ${key}/${n}`);
          }
          done.push(n);
        } finally {
          active.delete(key);
        }
      },
    });
    try {
      for (let n = 0; n < perKey; n++) {
        await db.sql.begin((tx) => crier.publishMany(tx, keys.map((key) => ({ topic: 'ordf.step', key, payload: { key, n } }))));
      }
      await eventually(
        async () => [...handled.values()].every((d) => d.length === perKey) && (await unfinished('ordered-failures')) === 0,
        60_000,
        'every keyed event handled',
      );
      assert.deepEqual(violations, []);
      for (const key of keys) assert.deepEqual(handled.get(key), Array.from({ length: perKey }, (_, n) => n), `order of ${key}`);
      assert.ok(failures > 10, `the handler failed often enough to test retries (${failures})`);
      const [kept] = await db.sql`
        SELECT count(*)::int AS n, count(*) FILTER (WHERE jsonb_array_length(errors) = 0)::int AS clean
        FROM crier.deliveries WHERE subscription = 'ordered-failures'`;
      assert.ok(kept!.n > 0 && kept!.n < keys.length * perKey, `some rows kept, not all (${kept!.n})`);
      assert.equal(kept!.clean, 0, 'every row kept had an error');
      const [left] = await db.sql`SELECT count(*)::int AS n FROM crier.ordered_keys WHERE subscription = 'ordered-failures'`;
      assert.equal(left!.n, 0, 'every key went idle');
    } finally {
      await worker.stop();
    }
  });

  test('ordered: deleting the head at its ack promotes the next delivery of its key (step by step, in SQL)', async () => {
    await admin.createSubscription({ name: 'ordered-steps', topics: ['ords.#'], ordered: true, history: 'failures' });
    const events = await db.sql.begin((tx) =>
      crier.publishMany(tx, [0, 1, 2].map((n) => ({ topic: 'ords.step', key: 'only', payload: { n } }))),
    );
    const stateOf = async () =>
      (await db.sql`SELECT event_id::text, state FROM crier.deliveries WHERE subscription = 'ordered-steps' ORDER BY event_id`).map(
        (r) => `${r.event_id}:${r.state}`,
      );
    const head = async () => (await db.sql`SELECT head_id::text FROM crier.ordered_keys WHERE subscription = 'ordered-steps'`)[0]?.head_id;
    assert.deepEqual(await stateOf(), [`${events[0]!.id}:pending`, `${events[1]!.id}:waiting`, `${events[2]!.id}:waiting`]);

    for (let i = 0; i < 3; i++) {
      const claimed = await db.sql`SELECT delivery_id::text AS id, event_id::text FROM crier.claim('ordered-steps', 'w', 10)`;
      assert.deepEqual(claimed.map((r) => r.event_id), [events[i]!.id], 'only the head is claimable');
      await db.sql`SELECT crier.complete('w', ${`{${claimed[0]!.id}}`}::bigint[], '{1}'::int[])`;
      const rest = events.slice(i + 1).map((e, j) => `${e.id}:${j === 0 ? 'pending' : 'waiting'}`);
      assert.deepEqual(await stateOf(), rest, `after the ack of event ${i}`);
      const next = rest.length > 0 ? (await db.sql`SELECT id::text FROM crier.deliveries WHERE event_id = ${events[i + 1]!.id} AND subscription = 'ordered-steps'`)[0]!.id : undefined;
      assert.equal(await head(), next, 'the key points at its new head, or is gone');
    }
  });

  test('transactional: a first-attempt success commits the effect and deletes the row in one transaction; a retried one keeps its row', async () => {
    const worker = await startWorker({
      name: 'tx-failures',
      topics: ['txf.#'],
      transactional: true,
      history: 'failures',
      backoff: { base: 10, max: 10 },
      handler: async (event: CrierEvent<{ fail: boolean }>, ctx) => {
        await ctx.tx`INSERT INTO effects (event_id, attempt) VALUES (${event.id}, ${ctx.attempt})`;
        if (event.payload.fail && ctx.attempt === 1) throw new Error('failed after writing');
      },
    });
    try {
      const [once, retried] = await db.sql.begin((tx) =>
        crier.publishMany(tx, [{ topic: 'txf.a', payload: { fail: false } }, { topic: 'txf.b', payload: { fail: true } }]),
      );
      await eventually(async () => (await deliveryStates(db.sql, 'tx-failures')).done === 1, 10_000, 'the retried delivery done');
      await eventually(async () => (await db.sql`SELECT 1 FROM effects WHERE event_id = ${once!.id}`).length === 1, 10_000, 'the first effect');
      const effects = await db.sql`SELECT event_id::text, attempt FROM effects WHERE event_id IN (${once!.id}, ${retried!.id}) ORDER BY event_id`;
      assert.deepEqual(effects.map((r) => [r.event_id, r.attempt]), [[once!.id, 1], [retried!.id, 2]]);
      const rows = await db.sql`SELECT event_id::text, attempts, errors->0->>'error' AS error FROM crier.deliveries WHERE subscription = 'tx-failures'`;
      assert.deepEqual(rows.map((r) => ({ ...r })), [{ event_id: retried!.id, attempts: 2, error: 'failed after writing' }]);
    } finally {
      await worker.stop();
    }
  });

  test('a requeued dead letter keeps its row when it then succeeds; replay queues handled events again from the log', async () => {
    let broken = true;
    const handled: string[] = [];
    const worker = await startWorker({
      name: 'again',
      topics: ['again.#'],
      history: 'failures',
      maxAttempts: 1,
      handler: (event) => {
        if (event.topic === 'again.poison' && broken) throw new Error('poison');
        handled.push(event.id);
      },
    });
    try {
      const events = await db.sql.begin((tx) =>
        crier.publishMany(tx, [
          { topic: 'again.ok', payload: { n: 1 } },
          { topic: 'again.ok', payload: { n: 2 } },
          { topic: 'again.poison', payload: { n: 3 } },
        ]),
      );
      await eventually(async () => handled.length === 2 && (await deliveryStates(db.sql, 'again')).dead === 1, 10_000, 'two handled, one dead');
      assert.deepEqual(await deliveryStates(db.sql, 'again'), { dead: 1 });

      broken = false;
      const requeued = await admin.requeue({ subscription: 'again' });
      assert.equal(requeued.count, 1);
      await eventually(async () => (await deliveryStates(db.sql, 'again')).done === 1, 10_000, 'the requeued delivery done');
      const [row] = await db.sql`SELECT state, attempts, errors FROM crier.deliveries WHERE subscription = 'again'`;
      assert.equal(row!.state, 'done');
      assert.equal(row!.attempts, 1, 'a first attempt after the requeue');
      assert.deepEqual(row!.errors.map((e: Record<string, unknown>) => ('requeued_by' in e ? 'requeue' : e.error)), ['poison', 'requeue'], 'its failure and its requeue kept');

      // Replay reads the log: the two events whose rows are gone, and the kept one, are queued again.
      const replayed = await admin.replay({ subscription: 'again', from: events[0]!.id });
      assert.deepEqual({ queued: replayed.queued, skipped: replayed.skipped }, { queued: 3, skipped: 0 });
      await eventually(async () => handled.length === 6 && (await unfinished('again')) === 0, 10_000, 'the replayed events handled');
      assert.deepEqual(handled.slice(3).sort(), events.map((e) => e.id).sort());
      assert.deepEqual(await deliveryStates(db.sql, 'again'), { done: 1 }, 'the replays succeeded at once: no new rows');
    } finally {
      await worker.stop();
    }
  });

  test('switched from full to failures and back while a worker runs: each ack follows the stored choice', async () => {
    const handled: string[] = [];
    // Starts from 'full' whatever the run's default (npm test -- --history).
    const worker = await startWorker({ name: 'switch', topics: ['switch.#'], history: 'full', handler: (event) => void handled.push(event.id) });
    const publishAndDrain = async (count: number) => {
      const target = handled.length + count;
      await db.sql.begin((tx) => crier.publishMany(tx, Array.from({ length: count }, (_, n) => ({ topic: 'switch.x', payload: { n } }))));
      await eventually(async () => handled.length === target && (await unfinished('switch')) === 0, 10_000, `${count} handled`);
    };
    try {
      await publishAndDrain(3);
      assert.deepEqual(await deliveryStates(db.sql, 'switch'), { done: 3 });

      const switched = await admin.createSubscription({ name: 'switch', topics: ['switch.#'], history: 'failures' });
      assert.equal(switched.outcome, 'updated');
      assert.equal((await admin.createSubscription({ name: 'switch', topics: ['switch.#'], history: 'failures' })).outcome, 'unchanged');
      assert.equal((await admin.listSubscriptions()).find((s) => s.name === 'switch')!.history, 'failures');
      await publishAndDrain(3);
      assert.deepEqual(await deliveryStates(db.sql, 'switch'), { done: 3 }, 'the rows kept before stay; the new successes leave none');

      // Back, from SQL; leaving p_history out keeps the stored choice.
      const [back] = await db.sql`SELECT crier.create_subscription('switch', '{switch.#}', p_history => 'full') AS outcome`;
      assert.equal(back!.outcome, 'updated');
      const [same] = await db.sql`SELECT crier.create_subscription('switch', '{switch.#}', p_max_attempts => 5) AS outcome`;
      assert.equal(same!.outcome, 'unchanged');
      await publishAndDrain(3);
      assert.deepEqual(await deliveryStates(db.sql, 'switch'), { done: 6 });
    } finally {
      await worker.stop();
    }
  });

  test('a worker adopts the stored choice and says how its code differs', async () => {
    await admin.createSubscription({ name: 'adopted', topics: ['adopted.#'], history: 'failures' });
    const warnings: string[] = [];
    const worker = crier.worker({
      connection: db.url,
      handleSignals: false,
      logger: { info: () => {}, warn: (fields: unknown, message?: string) => void warnings.push(`${message ?? ''} ${JSON.stringify(fields)}`), error: () => {} },
      subscriptions: [{ name: 'adopted', topics: ['adopted.#'], history: 'full', handler: () => {} }], // differs from the stored choice
    });
    await worker.start();
    await worker.stop();
    assert.ok(warnings.some((w) => /history/.test(w) && /failures/.test(w)), warnings.join('\n'));
    const [row] = await db.sql`SELECT history FROM crier.subscriptions WHERE name = 'adopted'`;
    assert.equal(row!.history, 'failures', 'the worker changed nothing');
    // A worker that creates its subscription stores its choice.
    const creating = crier.worker({
      connection: db.url,
      handleSignals: false,
      logger: false,
      subscriptions: [{ name: 'created-by-worker', topics: ['cbw.#'], history: 'failures', handler: () => {} }],
    });
    await creating.start();
    await creating.stop();
    const [created] = await db.sql`SELECT history FROM crier.subscriptions WHERE name = 'created-by-worker'`;
    assert.equal(created!.history, 'failures');
  });

  test('a bad choice is a clear error from TypeScript, the admin API, SQL and the CLI', async () => {
    assert.throws(
      () => crier.worker({ connection: db.url, subscriptions: [{ name: 'bad', topics: ['bad'], history: 'errors' as SubscriptionHistory, handler: () => {} }] }),
      (error: { code?: string; message: string }) => {
        assert.equal(error.code, 'CRIER_INVALID_OPTION');
        assert.match(error.message, /subscription "bad": history must be 'full' .* or 'failures' .*, got "errors"/);
        return true;
      },
    );
    await assert.rejects(admin.createSubscription({ name: 'bad', topics: ['bad'], history: 'none' as SubscriptionHistory }), /CRIER_INVALID_OPTION: subscription "bad": history must be/);
    await assert.rejects(
      db.sql`SELECT crier.create_subscription('bad', '{bad}', p_history => 'everything')`,
      /CRIER_INVALID_OPTION: subscription 'bad': history is 'full' \(keep every delivery\) or 'failures' .*, got 'everything'/,
    );
    await assert.rejects(db.sql`INSERT INTO crier.subscriptions (name, topics, history) VALUES ('bad', '{bad}', 'some')`, /subscriptions_history_valid/);
    const cli = await runCli(db.url, ['subscriptions', 'create', 'bad', '--topics', 'bad', '--history', 'partial']);
    assert.equal(cli.code, 2);
    assert.match(cli.stderr, /--history: "partial" is not full or failures/);
    assert.equal((await db.sql`SELECT 1 FROM crier.subscriptions WHERE name = 'bad'`).length, 0, 'nothing was created');
  });

  test('the CLI creates, lists, shows and counts it', async () => {
    const created = await runCli(db.url, ['subscriptions', 'create', 'cli-hist', '--topics', 'clih.#', '--history', 'failures']);
    assert.equal(created.code, 0, created.stderr);
    const list = await runCli(db.url, ['subscriptions', 'list']);
    assert.match(list.stdout, /HISTORY/);
    assert.match(list.stdout, /cli-hist .*failures/);
    const event = await crier.publish(db.sql, 'clih.x', { n: 1 });
    const [claimed] = await db.sql`SELECT delivery_id::text AS id FROM crier.claim('cli-hist', 'w', 1)`;
    await db.sql`SELECT crier.complete('w', ${`{${claimed!.id}}`}::bigint[], '{1}'::int[])`;
    const shown = await runCli(db.url, ['events', 'show', event.id]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /no delivery row kept by cli-hist \(history 'failures'/);
    assert.doesNotMatch(shown.stdout, /no subscription matched/);
    const json = JSON.parse((await runCli(db.url, ['events', 'show', event.id, '--json'])).stdout);
    assert.deepEqual(json.unrecorded, ['cli-hist']);
    const status = await runCli(db.url, ['status', '--subscription', 'cli-hist']);
    assert.match(status.stdout, /cli-hist\s.*\s0\*\s/);
    assert.match(status.stdout, /\* history 'failures': done counts only/);
  });
});

describe('the fault suite under history failures', () => {
  test("its checker proves deleted first-attempt successes from the handlers' records, and catches an unproven one", async () => {
    const { check, handledTable } = await import('../faults/checker.ts');
    const { Protocol } = await import('../src/worker/protocol.ts');
    await db.sql.unsafe(handledTable);
    for (const [name, topics, ordered] of [['faults', '{faults.event}', false], ['faults-tx', '{faults.event}', false], ['faults-ordered', '{faults.keyed}', true]] as const) {
      await db.sql`SELECT crier.create_subscription(${name}, ${topics}::text[], p_ordered => ${ordered}, p_history => 'failures')`;
    }
    const protocol = new Protocol(db.sql, 'crier', 'w1');
    const record = async (subscription: string, eventId: string, attempt: number) => {
      if (subscription === 'faults-ordered') {
        await db.sql`INSERT INTO handled_ordered (event_id, key, worker, attempt, phase, rollback) VALUES (${eventId}, 'k', 'w1', ${attempt}, 'done', false)`;
      } else {
        await db.sql`INSERT INTO ${db.sql(subscription === 'faults' ? 'handled' : 'handled_tx')} (event_id, worker, attempt, rollback) VALUES (${eventId}, 'w1', ${attempt}, false)`;
      }
    };
    const handleAll = async (recorded: (subscription: string) => boolean) => {
      for (const subscription of ['faults', 'faults-tx', 'faults-ordered']) {
        for (const d of await protocol.claim(subscription, 10)) {
          if (recorded(subscription)) await record(subscription, d.eventId, d.attempt);
          assert.equal((await protocol.complete([d.deliveryId], [d.attempt])).size, 1);
        }
      }
    };
    await crier.publish(db.sql, 'faults.event', { producer: 'p1', seq: 1, rollback: false });
    await crier.publish(db.sql, 'faults.keyed', { producer: 'p1', seq: 1, pos: 0, rollback: false }, { key: 'k' });
    await handleAll(() => true);
    assert.equal((await db.sql`SELECT 1 FROM crier.deliveries WHERE subscription LIKE 'faults%'`).length, 0, 'no rows left');
    let verdict = await check(db.sql, [], []);
    // (Its wrong-winner check reads every done row of the database: other tests' here.)
    assert.deepEqual(
      { lost: verdict.lost, forgottenUnproven: verdict.forgottenUnproven, keptClean: verdict.keptClean, forgotten: verdict.forgotten },
      { lost: 0, forgottenUnproven: 0, keptClean: 0, forgotten: 3 },
    );
    assert.equal(verdict.failuresSubscriptions, 3);

    // An ack that deleted a delivery whose handler never finished (no record) is caught.
    await crier.publish(db.sql, 'faults.event', { producer: 'p1', seq: 2, rollback: false });
    await handleAll((subscription) => subscription !== 'faults');
    verdict = await check(db.sql, [], []);
    assert.deepEqual({ lost: verdict.lost, forgottenUnproven: verdict.forgottenUnproven }, { lost: 1, forgottenUnproven: 1 });

    // A first-attempt success kept as a done row under 'failures' is caught too.
    await db.sql`SELECT crier.create_subscription('faults-tx', '{faults.event}', p_history => 'full')`;
    await crier.publish(db.sql, 'faults.event', { producer: 'p1', seq: 3, rollback: false });
    await handleAll(() => true);
    await db.sql`SELECT crier.create_subscription('faults-tx', '{faults.event}', p_history => 'failures')`;
    verdict = await check(db.sql, [], []);
    assert.equal(verdict.keptClean, 1);
  });
});
