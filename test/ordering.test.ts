// Per-key ordering: events with the same key are handled one at a time, in publish order, retries
// included; different keys run in parallel; a key blocked by a dead delivery costs the others nothing.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createAdmin, UnrecoverableError, type CrierEvent, type SubscriptionDefinition } from '../src/index.ts';
import { createCrier } from './support/history.ts';
import { createTestDatabase, deliveryOutcomes, deliveryStates, eventually, type TestDatabase } from './support/database.ts';

const crier = createCrier();
let db: TestDatabase;
before(async () => {
  db = await createTestDatabase('ordering');
});
after(async () => {
  await db.drop();
});

type Step = { key: string; n: number };

function startWorker(subscription: SubscriptionDefinition) {
  return crier
    .worker({ connection: db.url, handleSignals: false, logger: false, pollInterval: '100ms', subscriptions: [subscription] })
    .start();
}

const shuffled = <T>(items: T[]) => items.map((v) => [Math.random(), v] as const).sort((a, b) => a[0] - b[0]).map(([, v]) => v);

describe('per-key ordering', () => {
  test('50 keys x 40 events, concurrency 16, 20% random failures: each key handled in publish order, nothing lost', async () => {
    const keys = Array.from({ length: 50 }, (_, i) => `order-${i}`);
    const perKey = 40;
    const handled = new Map<string, number[]>(keys.map((k) => [k, []]));
    const active = new Set<string>();
    const violations: string[] = [];
    let failures = 0;
    let peak = 0;

    const worker = await startWorker({
      name: 'ordered',
      topics: ['ord.#'],
      ordered: true,
      concurrency: 16,
      maxAttempts: 25,
      backoff: { base: 1, max: 10 },
      handler: async (event: CrierEvent<Step>) => {
        const { key, n } = event.payload;
        if (active.has(key)) violations.push(`${key}: event ${n} started while another of its key was running`);
        const done = handled.get(key)!;
        if (done.length !== n) violations.push(`${key}: event ${n} started after ${done.length} were done`);
        active.add(key);
        peak = Math.max(peak, active.size);
        try {
          await new Promise((resolve) => setTimeout(resolve, Math.random() * 3));
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
      // Published while the worker consumes, in rounds with the keys shuffled, some rounds one
      // transaction per event: producers and acks of the same key race for real.
      for (let n = 0; n < perKey; n++) {
        const round = shuffled(keys).map((key) => ({ topic: 'ord.step', key, payload: { key, n } }));
        if (n % 4 === 0) {
          await Promise.all(round.map((e) => db.sql.begin((tx) => crier.publish(tx, e.topic, e.payload, { key: e.key }))));
        } else {
          await db.sql.begin((tx) => crier.publishMany(tx, round));
        }
      }
      await eventually(async () => (await deliveryOutcomes(db.sql, 'ordered', keys.length * perKey)).succeeded === keys.length * perKey, 120_000, 'all 2000 deliveries done');
      assert.deepEqual(violations, []);
      for (const key of keys) assert.deepEqual(handled.get(key), Array.from({ length: perKey }, (_, n) => n), `order of ${key}`);
      assert.ok(failures > 100, `the handler failed often enough to test retries (${failures})`);
      assert.ok(peak > 1, `different keys ran in parallel (peak ${peak})`);
      const [left] = await db.sql`SELECT count(*)::int AS n FROM crier.ordered_keys WHERE subscription = 'ordered'`;
      assert.equal(left!.n, 0, 'every key went idle');
    } finally {
      await worker.stop();
    }
  });

  test('a key blocked by a dead delivery does not hold up the others, shows in blocked_keys, and resumes in order when requeued', async () => {
    let poisoned = true;
    const handled = new Map<string, number[]>();
    const worker = await startWorker({
      name: 'blocking',
      topics: ['blk.#'],
      ordered: true,
      concurrency: 8,
      maxAttempts: 1,
      handler: async (event: CrierEvent<Step>) => {
        const { key, n } = event.payload;
        if (key === 'stuck' && n === 0 && poisoned) throw new UnrecoverableError('poison message');
        handled.set(key, [...(handled.get(key) ?? []), n]);
      },
    });
    try {
      const events = [
        ...Array.from({ length: 31 }, (_, n) => ({ key: 'stuck', n })),
        ...Array.from({ length: 10 }, (_, k) => Array.from({ length: 10 }, (_, n) => ({ key: `free-${k}`, n }))).flat(),
      ];
      await db.sql.begin((tx) => crier.publishMany(tx, events.map((p) => ({ topic: 'blk.step', key: p.key, payload: p }))));
      await eventually(async () => (await deliveryOutcomes(db.sql, 'blocking', 131)).succeeded === 100, 30_000, 'the 100 deliveries of free keys done');
      assert.deepEqual(await deliveryOutcomes(db.sql, 'blocking', 131), { succeeded: 100, dead: 1, waiting: 30 });
      // The backlog of the stuck key is not claimable at all: claims never step over it.
      const [pending] = await db.sql`SELECT count(*)::int AS n FROM crier.deliveries WHERE subscription = 'blocking' AND state = 'pending'`;
      assert.equal(pending!.n, 0);
      const blocked = await db.sql`SELECT key, waiting::int, last_error FROM crier.blocked_keys WHERE subscription = 'blocking'`;
      assert.deepEqual(blocked.map((r) => ({ ...r })), [{ key: 'stuck', waiting: 30, last_error: 'UnrecoverableError: poison message' }]);
      for (let k = 0; k < 10; k++) assert.deepEqual(handled.get(`free-${k}`), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      assert.equal(handled.get('stuck'), undefined);

      // An operator requeues the dead delivery: it is the key's head again, and the key drains in order.
      poisoned = false;
      const requeued = await db.sql`
        UPDATE crier.deliveries SET state = 'pending', attempts = 0, available_at = now(), finished_at = NULL
        WHERE subscription = 'blocking' AND state = 'dead' RETURNING state`;
      assert.deepEqual(requeued.map((r) => r.state), ['pending']);
      await eventually(async () => (await deliveryOutcomes(db.sql, 'blocking', 131)).succeeded === 131, 30_000, 'the stuck key drained');
      assert.deepEqual(handled.get('stuck'), Array.from({ length: 31 }, (_, n) => n));
      assert.equal((await db.sql`SELECT count(*)::int AS n FROM crier.blocked_keys`)[0]!.n, 0);
    } finally {
      await worker.stop();
    }
  });

  test("policy 'skip': a dead delivery lets its key move on; requeued later, it waits behind the key's head", async () => {
    const handled: number[] = [];
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    let holding = false;
    const worker = await startWorker({
      name: 'skipping',
      topics: ['skp.#'],
      ordered: { onDead: 'skip' },
      maxAttempts: 1,
      handler: async (event: CrierEvent<Step>) => {
        if (event.payload.n === 1 && handled.length < 3) throw new UnrecoverableError('poison');
        if (event.payload.n === 4) {
          holding = true; // 4 is the key's head while n=1 is requeued
          await gate;
        }
        handled.push(event.payload.n);
      },
    });
    try {
      await db.sql.begin((tx) =>
        crier.publishMany(tx, [0, 1, 2, 3, 4, 5].map((n) => ({ topic: 'skp.step', key: 'k', payload: { key: 'k', n } }))),
      );
      await eventually(() => holding, 10_000, 'event 4 running');
      assert.deepEqual(handled, [0, 2, 3]);
      // A plain UPDATE, as an operator would write it. (Its RETURNING shows what the UPDATE wrote;
      // the ordering trigger, which runs after the row is written, then moves it to waiting.)
      const [requeued] = await db.sql`
        UPDATE crier.deliveries d SET state = 'pending', attempts = 0 FROM crier.events e
        WHERE e.id = d.event_id AND d.subscription = 'skipping' AND e.payload->>'n' = '1' RETURNING d.id`;
      const [now] = await db.sql`SELECT state FROM crier.deliveries WHERE id = ${requeued!.id}`;
      assert.equal(now!.state, 'waiting', 'the requeued delivery queues behind the running head (4)');
      release();
      await eventually(async () => (await deliveryOutcomes(db.sql, 'skipping', 6)).succeeded === 6, 10_000, 'all six done');
      assert.deepEqual(handled, [0, 2, 3, 4, 1, 5]);
    } finally {
      await worker.stop();
    }
  });

  test('a producer still inserting behind a key and the ack of its head: the ack waits, then hands the key on', async () => {
    await db.sql`INSERT INTO crier.subscriptions (name, topics, ordered) VALUES ('race', '{race.#}', true)`;
    const first = await crier.publish(db.sql, 'race.step', { n: 0 }, { key: 'K' });
    const [claimed] = await db.sql`SELECT delivery_id::text AS id, attempt FROM crier.claim('race', 'w', 10)`;
    const producer = await db.sql.reserve();
    try {
      await producer`BEGIN`;
      const second = await crier.publish(producer as never, 'race.step', { n: 1 }, { key: 'K' });
      let acked = false;
      const ack = db.sql`SELECT crier.complete('w', ${`{${claimed!.id}}`}::bigint[], ${`{${claimed!.attempt}}`}::int[])`.then(() => {
        acked = true;
      });
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(acked, false, 'the ack of the head waits for the producer of the same key');
      await producer`COMMIT`;
      await ack;
      // The head is done (or gone under history 'failures'), the new event is the key's head.
      const rows = await db.sql`SELECT e.id::text AS event, d.state FROM crier.deliveries d JOIN crier.events e ON e.id = d.event_id WHERE d.subscription = 'race' ORDER BY d.id`;
      assert.deepEqual(rows.filter((r) => r.state !== 'done').map((r) => ({ ...r })), [{ event: second.id, state: 'pending' }], 'the new event became the head');
      assert.ok(rows.every((r) => r.state !== 'done' || r.event === first.id));

      // The other way round: the head is acked first, then a producer finds the key idle.
      const [head] = await db.sql`SELECT delivery_id::text AS id, attempt FROM crier.claim('race', 'w', 10)`;
      await db.sql`SELECT crier.complete('w', ${`{${head!.id}}`}::bigint[], ${`{${head!.attempt}}`}::int[])`;
      const third = await crier.publish(db.sql, 'race.step', { n: 2 }, { key: 'K' });
      const [row] = await db.sql`SELECT state FROM crier.deliveries WHERE event_id = ${third.id}`;
      assert.equal(row!.state, 'pending');
    } finally {
      producer.release();
    }
  });

  test('null keys are not ordered, and unordered subscriptions never wait', async () => {
    await db.sql`INSERT INTO crier.subscriptions (name, topics, ordered) VALUES ('o-nulls', '{nul.#}', true), ('u-nulls', '{nul.#}', false)`;
    await db.sql.begin((tx) =>
      crier.publishMany(tx, [
        ...Array.from({ length: 5 }, (_, n) => ({ topic: 'nul.x', payload: { n } })),
        ...Array.from({ length: 5 }, (_, n) => ({ topic: 'nul.x', key: 'same', payload: { n } })),
      ]),
    );
    assert.deepEqual(await deliveryStates(db.sql, 'o-nulls'), { pending: 6, waiting: 4 });
    assert.deepEqual(await deliveryStates(db.sql, 'u-nulls'), { pending: 10 });
  });
});

describe('replay into an ordered subscription', () => {
  test('replayed events of one key are queued one behind the other, in publish order (SQL)', async () => {
    await db.sql`INSERT INTO crier.subscriptions (name, topics, ordered) VALUES ('replayed', '{rep.#}', true)`;
    const first = await crier.publish(db.sql, 'rep.step', { n: 0 }, { key: 'K' });
    const second = await crier.publish(db.sql, 'rep.step', { n: 1 }, { key: 'K' });
    const handleOne = async (expected: string) => {
      const claimed = await db.sql`SELECT delivery_id::text AS id, attempt, event_id::text AS event FROM crier.claim('replayed', 'w', 10)`;
      assert.deepEqual(claimed.map((c) => c.event), [expected], 'one delivery of the key at a time, in publish order');
      await db.sql`SELECT crier.complete('w', ${`{${claimed[0]!.id}}`}::bigint[], ${`{${claimed[0]!.attempt}}`}::int[])`;
    };
    await handleOne(first.id);
    await handleOne(second.id);

    const replayed = await db.sql`SELECT event_id::text, queued FROM crier.replay('replayed', p_from_id => ${first.id})`;
    assert.deepEqual(replayed.map((r) => ({ ...r })), [{ event_id: first.id, queued: true }, { event_id: second.id, queued: true }]);
    assert.deepEqual(await deliveryOutcomes(db.sql, 'replayed', 4), { succeeded: 2, pending: 1, waiting: 1 });
    await handleOne(first.id);
    await handleOne(second.id);
    assert.deepEqual(await deliveryOutcomes(db.sql, 'replayed', 4), { succeeded: 4 });
  });

  test('a worker handles two replayed events of one key one at a time, in publish order', async () => {
    const log: string[] = [];
    const worker = await startWorker({
      name: 'replayed-worker',
      topics: ['repw.#'],
      ordered: true,
      concurrency: 4,
      handler: async (event: CrierEvent<{ n: number }>) => {
        log.push(`start ${event.payload.n}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
        log.push(`end ${event.payload.n}`);
      },
    });
    try {
      const first = await crier.publish(db.sql, 'repw.step', { n: 0 }, { key: 'K' });
      await crier.publish(db.sql, 'repw.step', { n: 1 }, { key: 'K' });
      await eventually(async () => log.length === 4 && (await deliveryOutcomes(db.sql, 'replayed-worker', 2)).succeeded === 2, 10_000, 'the two events to be handled');
      const result = await createAdmin({ connection: db.sql }).replay({ subscription: 'replayed-worker', from: first.id });
      assert.equal(result.queued, 2);
      await eventually(() => log.length === 8, 10_000, 'the two replayed events to be handled');
      assert.deepEqual(log, ['start 0', 'end 0', 'start 1', 'end 1', 'start 0', 'end 0', 'start 1', 'end 1']);
    } finally {
      await worker.stop();
    }
  });
});
