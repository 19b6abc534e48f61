// One worker process serving 25 subscriptions: the connections it holds (counted by the server, by
// the worker's application_name) and the round trips it makes while everything is idle (counted
// where the worker sends them). Neither is a wall-clock assertion: a loaded machine
// only delays timers, which makes fewer round trips, never more.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import postgres from 'postgres';
import { type Worker } from '../src/index.ts';
import { createCrier } from './support/history.ts';
import { Protocol } from '../src/worker/protocol.ts';
import { createTestDatabase, deliveryOutcomes, eventually, serverUrl, type TestDatabase } from './support/database.ts';

const crier = createCrier();
const subscriptions = 25;
const names = Array.from({ length: subscriptions }, (_, i) => `many_${String(i).padStart(2, '0')}`);
let db: TestDatabase;
/** On the server's own database: its queries are not the test database's. */
let server: postgres.Sql;

before(async () => {
  db = await createTestDatabase('many_subscriptions');
  server = postgres(serverUrl, { max: 1, onnotice: () => {} });
});
after(async () => {
  await server.end({ timeout: 1 });
  await db.drop();
});

function startWorker(
  appName: string,
  options: { maxConnections?: number; handled?: Map<string, number>; subscriptionOf?: Map<string, string> } = {},
): Worker {
  const url = new URL(db.url);
  url.searchParams.set('application_name', appName);
  return crier.worker({
    connection: url.toString(),
    handleSignals: false,
    logger: false,
    ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }),
    subscriptions: names.map((name) => ({
      name,
      topics: [`${name}.#`],
      handler: async (event, ctx) => {
        options.handled?.set(event.id, (options.handled.get(event.id) ?? 0) + 1);
        options.subscriptionOf?.set(ctx.deliveryId, ctx.subscription);
        await new Promise((resolve) => setTimeout(resolve, 1));
      },
    })),
  });
}

async function connections(appName: string): Promise<number> {
  const [row] = await server`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = ${db.name} AND application_name = ${appName}`;
  return row!.n as number;
}

/** Every subscription of the worker parked: it found nothing to claim and waits for a NOTIFY. */
async function allParked(workerId: string): Promise<boolean> {
  const [row] = await db.sql`SELECT count(*)::int AS n FROM crier.parked_workers WHERE worker = ${workerId}`;
  return row!.n === subscriptions;
}

describe('many subscriptions, few connections', () => {
  test('25 subscriptions: at most 3 connections, busy or idle; claims and acks of several in one round trip; idle, about one commit a second at most', async () => {
    const appName = 'crier_many_default';
    const handled = new Map<string, number>();
    // The subscriptions each round trip of claims carried (one for crier.claim and claim_or_idle).
    const claimed: number[] = [];
    // The acks each round trip carried (delivery ids), whatever its kind: a claim's, or a flush's.
    const acked: string[][] = [];
    const ids = (text: unknown) => (text === '{}' ? [] : String(text).slice(1, -1).split(','));
    const run = (Protocol.prototype as any).run;
    (Protocol.prototype as any).run = function (this: Protocol, name: string, params: unknown[], ...rest: unknown[]) {
      if (name === 'claimMany') claimed.push(String(params[1]).split(',').length);
      else if (name === 'claim' || name === 'claimOrIdle') claimed.push(1);
      const acks = name === 'claimMany' ? params[5] : name === 'claim' || name === 'claimOrIdle' ? params[3] : name === 'complete' ? params[1] : '{}';
      if (acks !== '{}') acked.push(ids(acks));
      return run.call(this, name, params, ...rest);
    };
    // Each delivery's subscription, as its handler saw it (under history 'failures' its row is gone).
    const subscriptionOf = new Map<string, string>();
    const worker = startWorker(appName, { handled, subscriptionOf });
    let most = 0;
    try {
      await worker.start();
      await eventually(() => allParked(worker.id), 30_000, 'every subscription parked');
      most = Math.max(most, await connections(appName));

      // Work for every subscription in one transaction: its one NOTIFY wakes them all at once, and
      // the claims beyond the two connections' go together.
      const sample = setInterval(() => void connections(appName).then((n) => (most = Math.max(most, n)), () => {}), 25);
      try {
        await db.sql.begin((tx) => crier.publishMany(tx, names.flatMap((name) => Array.from({ length: 20 }, (_, n) => ({ topic: `${name}.x`, payload: { n } })))));
        await eventually(() => handled.size === 20 * subscriptions, 60_000, `${20 * subscriptions} handled`);
        await eventually(async () => (await db.sql`SELECT count(*)::int AS n FROM crier.deliveries WHERE state <> 'done'`)[0]!.n === 0, 60_000, 'every ack written');
      } finally {
        clearInterval(sample);
        (Protocol.prototype as any).run = run;
      }
      assert.ok(Math.max(...claimed) >= 10, `claims of several subscriptions went in one round trip (most in one: ${Math.max(...claimed)})`);
      assert.deepEqual([...new Set(handled.values())], [1], 'each handled once');
      // Acks are the worker's, not a subscription's: those that are due together go in one
      // statement, riding with whichever claim goes next. Were they sent per subscription, no round
      // trip would carry the acks of more than one.
      const ackTrips = acked.map((trip) => new Set(trip.map((id) => subscriptionOf.get(id))).size);
      assert.equal(new Set(acked.flat()).size, 20 * subscriptions, 'every delivery acked');
      assert.ok(Math.max(...ackTrips) >= 3, `acks of several subscriptions went in one round trip (most in one: ${Math.max(...ackTrips)}; ${acked.length} round trips carried acks)`);
      most = Math.max(most, await connections(appName));
      assert.ok(most <= 3, `a worker with 25 subscriptions held ${most} connections (at most 3 by default)`);
      assert.ok(most >= 2, `counted ${most} connections: LISTEN and the worker's own`);

      // Idle: the worker's round trips in a 10 s window once every subscription has parked again,
      // counted where it sends them (Protocol.run). Not the server's commit counter: under load a
      // backend's statistics reach it up to a minute late, so a busy phase's commits landed inside
      // the window (36 in a full-suite run). Load only delays the worker's timers, never adds
      // round trips, so this bound cannot be broken by a slow machine.
      await eventually(() => allParked(worker.id), 30_000, 'every subscription parked again');
      const idleTrips: string[] = [];
      (Protocol.prototype as any).run = function (this: Protocol, name: string, ...rest: unknown[]) {
        idleTrips.push(name);
        return run.call(this, name, ...rest);
      };
      try {
        await new Promise((resolve) => setTimeout(resolve, 10_000));
      } finally {
        (Protocol.prototype as any).run = run;
      }
      // Expected with the defaults: a poll every 2 s (5) and a heartbeat every 10 s (1); the LISTEN
      // health check (1) goes through the listener. At most one a second is the target.
      assert.ok(idleTrips.length <= 10, `idle, 25 subscriptions made ${idleTrips.length} round trips in 10 s (at most 10): ${idleTrips.join(', ')}`);
    } finally {
      await worker.stop();
    }
  });

  test('claims that wait go together: each gets its own subscription\'s deliveries; an unknown subscription fails alone', async () => {
    // Subscriptions exist once a worker declared them (the first test's); publish to three.
    const [a, b, c] = names as [string, string, string];
    await db.sql.begin((tx) => crier.publishMany(tx, [a, b, c].flatMap((name) => Array.from({ length: 3 }, (_, n) => ({ topic: `${name}.z`, payload: { name, n } })))));
    // One claim on its way at a time: the first goes alone, the four that come meanwhile go together.
    const protocol = new Protocol(db.sql, 'crier', 'w-together', 1);
    const sent: string[] = [];
    const run = (protocol as any).run.bind(protocol);
    (protocol as any).run = (name: string, params: unknown[]) => (sent.push(name), run(name, params));
    const [first, ofA, ofB, unknown, ofC] = await Promise.allSettled([
      protocol.claim(a, 1),
      protocol.claim(a, 10),
      protocol.claimOrIdle(b, 10, { ids: [], attempts: [] }, true),
      protocol.claim('no_such_subscription', 10),
      protocol.claimOrIdle(c, 1, { ids: [], attempts: [] }, false),
    ]);
    assert.deepEqual(sent.slice(0, 2), ['claim', 'claimMany'], `the waiting claims went in one round trip (${sent.join(', ')})`);
    const payloads = (r: PromiseSettledResult<any>) => {
      assert.equal(r.status, 'fulfilled', String((r as PromiseRejectedResult).reason));
      const value = (r as PromiseFulfilledResult<any>).value;
      return (Array.isArray(value) ? value : value.deliveries).map((d: { payload: { name: string } }) => d.payload.name);
    };
    assert.deepEqual(payloads(first), [a]);
    assert.deepEqual(payloads(ofA), [a, a]);
    assert.deepEqual(payloads(ofB), [b, b, b]);
    assert.deepEqual(payloads(ofC), [c]);
    assert.equal(unknown.status, 'rejected');
    assert.match(String((unknown as PromiseRejectedResult).reason), /CRIER_UNKNOWN_SUBSCRIPTION/);
    // The others were sent again one by one after the call failed for the unknown one.
    assert.ok(sent.length >= 5, sent.join(', '));
    // Out of the way of the test that follows (it counts what its worker handles).
    await db.sql`DELETE FROM crier.deliveries WHERE subscription IN (${a}, ${b}, ${c}) AND state <> 'done'`;
  });

  test('maxConnections sets the cap; below 2 is refused', async () => {
    assert.throws(() => startWorker('crier_many_bad', { maxConnections: 1 }), /maxConnections must be an integer >= 2/);
    const appName = 'crier_many_two';
    const handled = new Map<string, number>();
    const worker = startWorker(appName, { maxConnections: 2, handled });
    await worker.start();
    let most = 0;
    const sample = setInterval(() => void connections(appName).then((n) => (most = Math.max(most, n)), () => {}), 25);
    try {
      await Promise.all(
        names.map((name) => db.sql.begin((tx) => crier.publishMany(tx, Array.from({ length: 4 }, (_, n) => ({ topic: `${name}.y`, payload: { n } }))))),
      );
      await eventually(() => handled.size === 4 * subscriptions, 60_000, `${4 * subscriptions} handled`);
    } finally {
      clearInterval(sample);
      await worker.stop();
    }
    assert.ok(most <= 2, `held ${most} connections with maxConnections: 2`);
  });

  test('transactional handlers hold slots of their own: with all of them stuck, the round trips (claims, acks, heartbeats) go on', async () => {
    const appName = 'crier_many_tx';
    const url = new URL(db.url);
    url.searchParams.set('application_name', appName);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let stuck = 0;
    const plain: string[] = [];
    const worker = crier.worker({
      connection: url.toString(),
      handleSignals: false,
      logger: false,
      maxConnections: 2,
      heartbeatInterval: '100ms',
      subscriptions: [
        {
          name: 'many_tx',
          topics: ['many_tx.#'],
          transactional: true,
          concurrency: 3,
          handler: async (_event, ctx) => {
            await ctx.tx`SELECT 1`;
            stuck++;
            await gate;
          },
        },
        { name: 'many_plain', topics: ['many_plain.#'], handler: (event) => void plain.push(event.id) },
      ],
    });
    await worker.start();
    let most = 0;
    const sample = setInterval(() => void connections(appName).then((n) => (most = Math.max(most, n)), () => {}), 25);
    try {
      await db.sql.begin((tx) => crier.publishMany(tx, Array.from({ length: 3 }, (_, n) => ({ topic: 'many_tx.x', payload: { n } }))));
      await eventually(() => stuck === 3, 30_000, 'three transactional handlers holding their transactions');
      const [{ seen }] = await db.sql`SELECT last_seen_at AS seen FROM crier.registered_workers WHERE id = ${worker.id}` as unknown as [{ seen: Date }];
      await db.sql.begin((tx) => crier.publishMany(tx, Array.from({ length: 20 }, (_, n) => ({ topic: 'many_plain.x', payload: { n } }))));
      await eventually(async () => plain.length === 20 && (await deliveryOutcomes(db.sql, 'many_plain', 20)).succeeded === 20, 30_000, 'the other subscription handled and acked meanwhile');
      await eventually(async () => (await db.sql`SELECT last_seen_at > ${seen} AS beat FROM crier.registered_workers WHERE id = ${worker.id}`)[0]!.beat, 30_000, 'a heartbeat meanwhile');
      assert.equal(stuck, 3);
    } finally {
      release();
      clearInterval(sample);
      await worker.stop();
    }
    assert.ok(most <= 2 + 3, `held ${most} connections: maxConnections 2 and 3 transactional slots at most`);
    assert.ok(most >= 4, `counted ${most}: LISTEN, the round trips' and the stuck handlers' transactions`);
  });
});
