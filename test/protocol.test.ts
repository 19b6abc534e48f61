// The worker protocol at the SQL level (crier.claim, complete, fail, extend_leases, release,
// rescue_expired), as any client in any language would drive it. Only the attempt holding the
// lease may finish a delivery; concurrent claims never share a row; retries back off in bounds.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import postgres from 'postgres';
import { CrierError } from '../src/index.ts';
import { createCrier } from './support/history.ts';
import { fromDatabaseError } from '../src/errors.ts';
import { Protocol } from '../src/worker/protocol.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/database.ts';

const crier = createCrier();
let db: TestDatabase;
before(async () => {
  db = await createTestDatabase('protocol');
});
after(async () => {
  await db.drop();
});

interface Claimed {
  delivery_id: string;
  attempt: number;
  event_id: string;
  topic: string;
  payload: unknown;
}

const array = (values: (string | number)[]) => `{${values.join(',')}}`;

async function subscription(name: string, settings: { lease?: number; maxAttempts?: number; base?: number; max?: number; paused?: boolean } = {}) {
  await db.sql`
    INSERT INTO crier.subscriptions (name, topics, lease_ms, max_attempts, backoff_base_ms, backoff_max_ms, paused)
    VALUES (${name}, ${[`${name}.#`]}::text[], ${settings.lease ?? 30_000}, ${settings.maxAttempts ?? 5},
            ${settings.base ?? 1000}, ${settings.max ?? 300_000}, ${settings.paused ?? false})`;
}

async function publish(name: string, count = 1) {
  return db.sql.begin((tx) =>
    crier.publishMany(tx, Array.from({ length: count }, (_, n) => ({ topic: `${name}.item`, payload: { n } }))),
  );
}

async function claim(subscription: string, worker: string, limit = 10, sql: postgres.Sql | postgres.TransactionSql = db.sql) {
  const rows = await sql.unsafe<Claimed[]>(
    `SELECT delivery_id::text, attempt, event_id::text, topic, payload FROM crier.claim($1, $2, $3)`,
    [subscription, worker, limit],
  );
  return [...rows];
}

async function ids(statement: string, params: (string | number)[]): Promise<string[]> {
  const rows = await db.sql.unsafe(statement, params);
  return rows.map((r) => String(r.id));
}

const complete = (worker: string, id: string, attempt: number) =>
  ids(`SELECT crier.complete($1, $2::text::bigint[], $3::text::int[]) AS id`, [worker, array([id]), array([attempt])]);
const extend = (worker: string, id: string, attempt: number) =>
  ids(`SELECT crier.extend_leases($1, $2::text::bigint[], $3::text::int[]) AS id`, [worker, array([id]), array([attempt])]);
const release = (worker: string, id: string, attempt: number) =>
  ids(`SELECT crier.release($1, $2::text::bigint[], $3::text::int[]) AS id`, [worker, array([id]), array([attempt])]);
const fail = async (worker: string, id: string, attempt: number, error = 'boom', giveUp = false) => [
  ...(await db.sql.unsafe(
    `SELECT delivery_id::text AS id, state, extract(epoch FROM available_at - now()) * 1000 AS delay_ms
     FROM crier.fail($1, $2::text::bigint[], $3::text::int[], $4::text::text[], '{NULL}', $5::text::boolean[])`,
    [worker, array([id]), array([attempt]), array([`"${error}"`]), array([giveUp ? 't' : 'f'])],
  )),
];

async function delivery(id: string) {
  const [row] = await db.sql`
    SELECT state, attempts, worker, locked_until, available_at <= now() AS due, last_error,
           jsonb_array_length(errors) AS errors, finished_at
    FROM crier.deliveries WHERE id = ${id}`;
  return row!;
}

async function leaseExpired(id: string) {
  await eventually(async () => {
    const [row] = await db.sql`SELECT locked_until < now() AS expired FROM crier.deliveries WHERE id = ${id}`;
    return row!.expired;
  }, 10_000, `lease of delivery ${id} to expire`);
}

test('a lost lease cannot ack: after rescue and a new claim, only the new attempt counts', async () => {
  await subscription('lost', { lease: 150 });
  await publish('lost');
  const [a] = await claim('lost', 'worker-a');
  assert.ok(a);
  assert.equal(a.attempt, 1);
  assert.deepEqual(await extend('worker-a', a.delivery_id, 1), [a.delivery_id], 'A holds the lease at first');

  await leaseExpired(a.delivery_id);
  const [rescued] = await db.sql`SELECT crier.rescue_expired() AS n`;
  assert.ok(rescued!.n >= 1);
  const afterRescue = await delivery(a.delivery_id);
  assert.equal(afterRescue.state, 'pending');
  assert.equal(afterRescue.attempts, 1, 'the lost attempt counts');
  assert.match(afterRescue.last_error, /^lease expired: worker worker-a did not finish attempt 1/);

  const [b] = await claim('lost', 'worker-b');
  assert.ok(b);
  assert.equal(b.delivery_id, a.delivery_id);
  assert.equal(b.attempt, 2);
  const held = await delivery(b.delivery_id);

  // Worker A comes back from its pause and tries to finish what it no longer holds.
  assert.deepEqual(await complete('worker-a', a.delivery_id, 1), [], 'A cannot complete');
  assert.deepEqual(await fail('worker-a', a.delivery_id, 1), [], 'A cannot fail');
  assert.deepEqual(await extend('worker-a', a.delivery_id, 1), [], 'A cannot extend');
  assert.deepEqual(await release('worker-a', a.delivery_id, 1), [], 'A cannot release');
  assert.deepEqual(await complete('worker-a', a.delivery_id, 2), [], "A cannot use B's attempt number either");
  assert.deepEqual(await complete('worker-b', a.delivery_id, 1), [], 'B cannot ack with the old attempt');
  // claim can carry the previous batch's completions (0006): A's must be refused there too.
  await db.sql.unsafe(`SELECT * FROM crier.claim('lost', 'worker-a', 10, $1::text::bigint[], '{1}')`, [array([a.delivery_id])]);
  assert.deepEqual(await delivery(b.delivery_id), held, 'nothing changed');

  assert.deepEqual(await extend('worker-b', b.delivery_id, 2), [b.delivery_id]);
  assert.deepEqual(await complete('worker-b', b.delivery_id, 2), [b.delivery_id], 'B completes');
  assert.equal((await claim('lost', 'worker-a')).length, 0, 'nothing left to claim');
  const done = await delivery(b.delivery_id);
  assert.equal(done.state, 'done');
  assert.equal(done.locked_until, null);
  assert.ok(done.finished_at);
  assert.deepEqual(await complete('worker-b', b.delivery_id, 2), [], 'a second ack changes nothing');
  assert.deepEqual(await fail('worker-b', b.delivery_id, 2), [], 'nor does a late failure');
  assert.equal((await delivery(b.delivery_id)).state, 'done');
});

test('release gives the delivery and its attempt back', async () => {
  await subscription('rel');
  await publish('rel');
  const [first] = await claim('rel', 'w1');
  assert.equal(first!.attempt, 1);
  assert.deepEqual(await claim('rel', 'w2'), [], 'a running delivery is not claimable');
  assert.deepEqual(await release('w1', first!.delivery_id, 1), [first!.delivery_id]);
  const released = await delivery(first!.delivery_id);
  assert.equal(released.state, 'pending');
  assert.equal(released.attempts, 0, 'the attempt is given back');
  assert.equal(released.worker, null);
  assert.equal(released.locked_until, null);
  assert.equal(released.due, true);
  const [again] = await claim('rel', 'w2');
  assert.equal(again!.delivery_id, first!.delivery_id);
  assert.equal(again!.attempt, 1);
  assert.deepEqual(await release('w1', first!.delivery_id, 1), [], 'w1 cannot release what w2 holds');
});

test('rescue_expired makes an exhausted delivery dead with "lease expired"', async () => {
  await subscription('exhaust', { lease: 100, maxAttempts: 2 });
  await publish('exhaust');
  const [one] = await claim('exhaust', 'w1');
  await leaseExpired(one!.delivery_id);
  await db.sql`SELECT crier.rescue_expired()`;
  assert.equal((await delivery(one!.delivery_id)).state, 'pending', 'attempt 1 of 2: back to pending');
  const [two] = await claim('exhaust', 'w2');
  assert.equal(two!.attempt, 2);
  await leaseExpired(two!.delivery_id);
  await db.sql`SELECT crier.rescue_expired()`;
  const dead = await delivery(two!.delivery_id);
  assert.equal(dead.state, 'dead');
  assert.equal(dead.attempts, 2);
  assert.match(dead.last_error, /^lease expired: worker w2 did not finish attempt 2/);
  assert.equal(dead.errors, 2, 'both lost attempts are in the error history');
  assert.ok(dead.finished_at);
  const [history] = await db.sql`SELECT errors FROM crier.deliveries WHERE id = ${two!.delivery_id}`;
  assert.deepEqual(history!.errors.map((e: { error: string; worker: string }) => [e.worker, e.error]), [
    ['w1', 'lease expired'],
    ['w2', 'lease expired'],
  ]);
  assert.deepEqual(await claim('exhaust', 'w3'), [], 'a dead delivery is never claimed');
  assert.deepEqual(await complete('w2', two!.delivery_id, 2), [], 'nor acked');
});

test('a paused subscription claims nothing until resumed', async () => {
  await subscription('paused', { paused: true });
  const [event] = await publish('paused');
  assert.deepEqual(await claim('paused', 'w'), []);
  const [row] = await db.sql`SELECT state, attempts FROM crier.deliveries WHERE subscription = 'paused'`;
  assert.deepEqual({ ...row }, { state: 'pending', attempts: 0 }, 'the event is still delivered, just held');
  await db.sql`UPDATE crier.subscriptions SET paused = false WHERE name = 'paused'`;
  const [claimed] = await claim('paused', 'w');
  assert.equal(claimed!.event_id, event!.id);
});

test('claim on an unknown subscription raises CRIER_UNKNOWN_SUBSCRIPTION', async () => {
  await assert.rejects(claim('no-such-subscription', 'w'), (error: unknown) => {
    assert.match((error as Error).message, /^CRIER_UNKNOWN_SUBSCRIPTION: no subscription 'no-such-subscription'/);
    assert.equal((error as { code?: string }).code, 'P0002');
    const mapped = fromDatabaseError(error);
    assert.ok(mapped instanceof CrierError && mapped.code === 'CRIER_UNKNOWN_SUBSCRIPTION');
    return true;
  });
});

test('SKIP LOCKED: a claim in an open transaction does not block or share rows with a concurrent one', async () => {
  await subscription('skip');
  await publish('skip', 10);
  const other = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    let secondClaim: Claimed[] = [];
    const first = await db.sql.begin(async (tx) => {
      const mine = await claim('skip', 'w1', 5, tx);
      // While this transaction still holds its row locks, another connection claims.
      secondClaim = await other.begin(async (tx2) => {
        await tx2`SET LOCAL lock_timeout = '5s'`;
        return claim('skip', 'w2', 10, tx2);
      });
      return mine;
    });
    assert.equal(first.length, 5);
    assert.equal(secondClaim.length, 5, 'the second claim took the other five without waiting');
    const all = [...first, ...secondClaim].map((c) => c.delivery_id);
    assert.equal(new Set(all).size, 10, 'no delivery claimed twice');
  } finally {
    await other.end({ timeout: 1 });
  }
});

test('SKIP LOCKED: four connections claiming concurrently over many rows never get the same delivery', async () => {
  const n = 600;
  await subscription('race');
  await publish('race', n);
  const clients = Array.from({ length: 4 }, () => postgres(db.url, { max: 1, onnotice: () => {} }));
  try {
    const claimedBy = await Promise.all(
      clients.map(async (client, i) => {
        const mine: string[] = [];
        for (;;) {
          const rows = await claim('race', `racer-${i}`, 7, client);
          if (rows.length === 0) {
            const [left] = await client`SELECT count(*)::int AS n FROM crier.deliveries WHERE subscription = 'race' AND state = 'pending'`;
            if (left!.n === 0) return mine;
          }
          mine.push(...rows.map((r) => r.delivery_id));
        }
      }),
    );
    const all = claimedBy.flat();
    assert.equal(all.length, n, 'every delivery claimed exactly once');
    assert.equal(new Set(all).size, n);
    const [attempts] = await db.sql`SELECT max(attempts)::int AS max, min(attempts)::int AS min FROM crier.deliveries WHERE subscription = 'race'`;
    assert.deepEqual({ ...attempts }, { max: 1, min: 1 });
  } finally {
    await Promise.all(clients.map((c) => c.end({ timeout: 1 })));
  }
});

test('fail backs off exponentially with equal jitter: delay in [raw/2, raw], raw = min(max, base * 2^(attempt-1))', async () => {
  const base = 4000; // long enough that a slow machine cannot make a delivery due before the next claim checks it
  const max = 40_000;
  const maxAttempts = 8;
  await subscription('backoff', { base, max, maxAttempts });
  const events = await publish('backoff', 20);
  for (let attempt = 1; attempt < maxAttempts; attempt++) {
    const claimed = await claim('backoff', 'w', 100);
    assert.equal(claimed.length, events.length, `attempt ${attempt}: every delivery claimable again`);
    const raw = Math.min(max, base * 2 ** (attempt - 1));
    const delays: number[] = [];
    for (const c of claimed) {
      assert.equal(c.attempt, attempt);
      const [row] = await fail('w', c.delivery_id, c.attempt, `failure ${attempt}`);
      assert.equal(row!.state, 'pending');
      delays.push(Number(row!.delay_ms));
    }
    for (const d of delays) {
      assert.ok(d >= raw / 2 && d <= raw, `attempt ${attempt}: delay ${d}ms within [${raw / 2}, ${raw}]`);
    }
    assert.ok(new Set(delays).size > 1, `attempt ${attempt}: delays are jittered`);
    assert.deepEqual(await claim('backoff', 'w', 100), [], 'nothing is due before its backoff');
    // Skip the wait: make them due now (the delay itself was checked above).
    await db.sql`UPDATE crier.deliveries SET available_at = now() WHERE subscription = 'backoff'`;
  }
  const last = await claim('backoff', 'w', 100);
  const [row] = await fail('w', last[0]!.delivery_id, maxAttempts, 'final failure');
  assert.equal(row!.state, 'dead', 'the last attempt ends dead');
  const dead = await delivery(last[0]!.delivery_id);
  assert.equal(dead.last_error, 'final failure');
  assert.equal(dead.errors, maxAttempts);

  // give_up: dead at once, whatever attempts remain.
  const [second] = last.slice(1);
  await db.sql`UPDATE crier.deliveries SET attempts = 0, state = 'pending' WHERE id = ${second!.delivery_id}`;
  const [fresh] = await claim('backoff', 'w2', 1);
  const [gaveUp] = await fail('w2', fresh!.delivery_id, 1, 'hopeless', true);
  assert.equal(gaveUp!.state, 'dead');
});

test('a query that failed while its rows streamed in leaves no empty slots in the next claim on that connection', async () => {
  // postgres.js 3.4.x does not reset its row counter after such a failure (src/dense-rows.ts): the
  // next result on the connection used to start with that many empty slots, and a worker claimed
  // `undefined` deliveries.
  await subscription('stream-fail');
  await publish('stream-fail', 3);
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    await assert.rejects(sql`SELECT i, 1 / (4 - i) AS boom FROM generate_series(1, 10) i`, /division by zero/);
    const claimed = await new Protocol(sql, 'crier', 'w-stream').claim('stream-fail', 10);
    assert.equal(claimed.length, 3);
    assert.ok(claimed.every((delivery) => delivery?.topic === 'stream-fail.item'), 'three deliveries, no empty slots');
  } finally {
    await sql.end({ timeout: 1 });
  }
});
