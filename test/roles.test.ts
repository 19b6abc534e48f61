// Least privilege: log in as a member of each role crier.create_roles() makes and show what it can
// and cannot do. Roles are cluster-wide, so this file uses its own random prefix and drops them.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import postgres from 'postgres';
import { migrate, type CrierEvent } from '../src/index.ts';
import { createCrier } from './support/history.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/database.ts';

const crier = createCrier();
const prefix = `crier_t${randomBytes(3).toString('hex')}`;
const password = randomBytes(12).toString('hex');
const kinds = ['publisher', 'worker', 'operator', 'auditor'] as const;
type Kind = (typeof kinds)[number];
const login = (kind: Kind) => `${prefix}_${kind}_login`;

let db: TestDatabase;
const clients: postgres.Sql[] = [];

function urlAs(kind: Kind): string {
  const url = new URL(db.url);
  url.username = login(kind);
  url.password = password;
  return url.toString();
}

function connectAs(kind: Kind): postgres.Sql {
  const client = postgres(urlAs(kind), { max: 2, onnotice: () => {} });
  clients.push(client);
  return client;
}

/** Asserts the query is refused for lack of privilege (SQLSTATE 42501). */
async function refused(query: PromiseLike<unknown>, what: string) {
  await assert.rejects(Promise.resolve(query), (error: { code?: string; message: string }) => {
    assert.equal(error.code, '42501', `${what}: expected insufficient_privilege, got ${error.code}: ${error.message}`);
    return true;
  }, what);
}

before(async () => {
  db = await createTestDatabase('roles');
  // crier's audit views arrive with another migration; one view is enough to show the auditor's rights.
  await db.sql`CREATE VIEW crier.test_backlog AS SELECT subscription, state, count(*)::int AS n FROM crier.deliveries GROUP BY 1, 2`;
  await db.sql`SELECT crier.create_roles(${prefix})`;
  for (const kind of kinds) {
    await db.sql.unsafe(`CREATE ROLE "${login(kind)}" LOGIN PASSWORD '${password}' IN ROLE "${prefix}_${kind}"`);
  }
  // History 'full' whatever the run's default (npm test -- --history): the roles' tests read and
  // prune the done rows a worker leaves (a 'failures' worker deleting its rows has its own test).
  await db.sql`INSERT INTO crier.subscriptions (name, topics, history) VALUES ('mine', '{order.#}', 'full'), ('theirs', '{order.#}', 'full')`;
  await db.sql.unsafe(`INSERT INTO crier.subscription_grants (role, subscription) VALUES ('${prefix}_worker', 'mine')`);
});

after(async () => {
  await Promise.all(clients.map((c) => c.end({ timeout: 1 })));
  const dropped = await db.sql`SELECT crier.drop_roles(${prefix}) AS role`;
  for (const kind of kinds) await db.sql.unsafe(`DROP ROLE IF EXISTS "${login(kind)}"`);
  await db.drop();
  assert.equal(dropped.length, 4);
});

test('create_roles makes four NOLOGIN group roles and can be run again', async () => {
  const again = await db.sql`SELECT crier.create_roles(${prefix}) AS role`;
  assert.deepEqual(again.map((r) => r.role), kinds.map((k) => `${prefix}_${k}`));
  const roles = await db.sql`SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE ${`${prefix}\\_%`} AND NOT rolcanlogin ORDER BY 1`;
  assert.equal(roles.length, 4);
  await assert.rejects(db.sql`SELECT crier.create_roles('Robert"); DROP TABLE crier.events; --')`, /CRIER_INVALID_OPTION: role prefix/);
});

test('publisher: publishes from TypeScript and SQL, reads and changes nothing else', async () => {
  const sql = connectAs('publisher');
  const [viaTs] = await sql.begin((tx) => crier.publishMany(tx, [{ topic: 'order.created', payload: { n: 1 }, key: 'o1' }]));
  assert.match(viaTs!.id, /^\d+$/);
  const [viaSql] = await sql`SELECT crier.publish('order.paid', '{"n": 2}', 'o1') AS id`;
  assert.ok(Number(viaSql!.id) > Number(viaTs!.id));
  // Fan-out ran as the trigger's owner: both subscriptions got both events.
  const [{ n }] = (await db.sql`SELECT count(*)::int AS n FROM crier.deliveries`) as unknown as [{ n: number }];
  assert.equal(n, 4);

  assert.equal((await sql`SELECT * FROM crier.events`).length, 0, 'earlier events are invisible, even its own');
  await refused(sql`SELECT * FROM crier.deliveries`, 'read deliveries');
  await refused(sql`SELECT * FROM crier.subscriptions`, 'read subscriptions');
  await refused(sql`SELECT * FROM crier.test_backlog`, 'read a view');
  await refused(sql`UPDATE crier.events SET payload = '{}'`, 'rewrite the log');
  await refused(sql`DELETE FROM crier.events`, 'delete from the log');
  await refused(sql`INSERT INTO crier.events (topic, payload, created_at) VALUES ('order.x', '{}', now() - interval '1 day')`, 'backdate an event');
  await refused(sql`SELECT * FROM crier.claim('mine', 'w', 1)`, 'claim');
  await refused(sql`INSERT INTO crier.subscriptions (name, topics) VALUES ('spy', '{#}')`, 'subscribe');

  // A retried publish with an idempotency key finds the first one without reading the log.
  const once = () => sql.begin((tx) => crier.publish(tx, 'nobody.listens', { n: 3 }, { idempotencyKey: 'req-1' }));
  const first = await once();
  const again = await once();
  assert.deepEqual([again.id, again.duplicate, first.duplicate], [first.id, true, false]);
});

test('worker: works on its granted subscription only', async () => {
  const handled: CrierEvent[] = [];
  const worker = crier.worker({
    connection: urlAs('worker'),
    logger: false,
    handleSignals: false,
    pollInterval: '200ms',
    subscriptions: [{ name: 'mine', topics: ['order.#'], handler: (event) => void handled.push(event) }],
  });
  await worker.start();
  try {
    await eventually(async () => {
      const [row] = await db.sql`SELECT count(*)::int AS n FROM crier.deliveries WHERE subscription = 'mine' AND state = 'done'`;
      return row!.n === 2;
    }, 15_000, 'both events of "mine" done by the restricted worker');
  } finally {
    await worker.stop();
  }
  assert.deepEqual(handled.map((e) => e.topic).sort(), ['order.created', 'order.paid']);
  assert.deepEqual(handled.find((e) => e.topic === 'order.created')!.payload, { n: 1 });
  // It registered itself, was seen by its heartbeat and marked itself stopped (crier.workers).
  const [registered] = await db.sql`SELECT status, subscriptions FROM crier.workers WHERE worker = ${worker.id}`;
  assert.deepEqual({ ...registered }, { status: 'stopped', subscriptions: ['mine'] });

  const sql = connectAs('worker');
  // It sees its own rows and nothing of the other subscription.
  assert.deepEqual((await sql`SELECT DISTINCT subscription FROM crier.deliveries`).map((r) => r.subscription), ['mine']);
  assert.deepEqual((await sql`SELECT name FROM crier.subscriptions`).map((r) => r.name), ['mine']);
  await assert.rejects(sql`SELECT * FROM crier.claim('theirs', 'w', 10)`, /CRIER_UNKNOWN_SUBSCRIPTION/);

  // Another worker (the owner here) holds a delivery of "theirs": the restricted worker cannot ack,
  // fail, release or heartbeat it, even knowing the worker id and attempt.
  const [held] = await db.sql`SELECT delivery_id::text AS id, attempt FROM crier.claim('theirs', 'other', 1)`;
  const ids = `{${held!.id}}`;
  assert.equal((await sql`SELECT * FROM crier.complete('other', ${ids}::bigint[], '{1}'::int[])`).length, 0);
  assert.equal((await sql`SELECT * FROM crier.extend_leases('other', ${ids}::bigint[], '{1}'::int[])`).length, 0);
  assert.equal((await sql`SELECT * FROM crier.release('other', ${ids}::bigint[], '{1}'::int[])`).length, 0);
  assert.equal((await sql`SELECT * FROM crier.fail('other', ${ids}::bigint[], '{1}'::int[], '{x}', '{NULL}', '{t}')`).length, 0);
  assert.equal((await sql`UPDATE crier.deliveries SET state = 'done' WHERE subscription = 'theirs'`).count, 0);
  // Even with the lease run out, its rescuer does not touch another subscription's delivery.
  await db.sql`UPDATE crier.deliveries SET locked_until = now() - interval '1 minute' WHERE id = ${held!.id}`;
  assert.equal((await sql`SELECT crier.rescue_expired() AS n`)[0]!.n, 0);
  const [still] = await db.sql`SELECT state, worker FROM crier.deliveries WHERE id = ${held!.id}`;
  assert.deepEqual({ ...still }, { state: 'running', worker: 'other' });

  // Events that reached only other subscriptions are invisible to it.
  await db.sql`INSERT INTO crier.subscriptions (name, topics) VALUES ('secret', '{secret.#}')`;
  await crier.publish(db.sql, 'secret.salary', { amount: 1 });
  assert.equal((await sql`SELECT * FROM crier.events WHERE topic = 'secret.salary'`).length, 0);
  assert.equal((await sql`SELECT * FROM crier.events`).length, 2, 'only the two events "mine" received');

  // Declaring a subscription it was not granted, or pausing one, is refused.
  const intruder = crier.worker({
    connection: urlAs('worker'),
    logger: false,
    handleSignals: false,
    subscriptions: [{ name: 'theirs', topics: ['#'], handler: () => {} }],
  });
  await assert.rejects(intruder.start(), /row-level security/);
  await refused(sql`UPDATE crier.subscriptions SET paused = true`, 'pause');
  await refused(sql`SELECT crier.publish('order.x', '{}')`, 'publish');
  await refused(sql`INSERT INTO crier.subscription_grants (role, subscription) VALUES (current_user::text::regrole, 'theirs')`, 'grant itself');
  await refused(sql`SELECT * FROM crier.test_backlog`, 'read a view');
});

test('operator: pauses, requeues, prunes; cannot publish or grant', async () => {
  const sql = connectAs('operator');
  assert.equal((await sql`UPDATE crier.subscriptions SET paused = true WHERE name = 'theirs'`).count, 1);
  assert.equal((await sql`UPDATE crier.subscriptions SET paused = false WHERE name = 'theirs'`).count, 1);
  await db.sql`UPDATE crier.deliveries SET state = 'dead', worker = NULL, locked_until = NULL WHERE subscription = 'theirs' AND state = 'running'`;
  const requeued = await sql`
    UPDATE crier.deliveries SET state = 'pending', available_at = now(), attempts = 0
    WHERE state = 'dead' RETURNING id`;
  assert.equal(requeued.length, 1);
  const pruned = await sql`DELETE FROM crier.deliveries WHERE state = 'done' RETURNING id`;
  assert.equal(pruned.length, 2);
  assert.ok((await sql`SELECT * FROM crier.test_backlog`).length > 0);
  await refused(sql`SELECT crier.publish('order.x', '{}')`, 'publish');
  await refused(sql`INSERT INTO crier.events (topic, payload) VALUES ('order.x', '{}')`, 'insert an event');
  await refused(sql`SELECT crier.publish('order.x', '{}', p_idempotency_key => 'op-1')`, 'publish with an idempotency key');
  await refused(sql`SELECT * FROM crier.publish_idempotent('[{"topic": "order.x", "payload": {}}]')`, 'publish through the definer function');
  await refused(sql`INSERT INTO crier.subscription_grants (role, subscription) VALUES (current_user::text::regrole, 'theirs')`, 'grant');
  await refused(sql`SELECT crier.create_roles('x')`, 'create roles');
  // Partitions: the operator retires them and sizes them, but runs no DDL of its choosing.
  await refused(sql`SELECT crier.add_partition('crier.events', 'x', 'FOR VALUES FROM (0) TO (1)')`, 'add a partition of its choosing');
  await assert.rejects(sql`SELECT * FROM crier.prune_partitions('subscriptions', now())`, /CRIER_INVALID_OPTION: prune_partitions takes 'deliveries' or 'events'/);
  const [partitions] = await sql`SELECT dropped FROM crier.prune_partitions('deliveries', now() - interval '1 day', p_dry_run => true)`;
  assert.equal(partitions!.dropped, 0);
});

test('worker: cannot mark, read or check another subscription\'s processed events', async () => {
  const [event] = await db.sql`SELECT crier.publish('nobody.listens', '{}') AS id`;
  const id = Number(event!.id);
  assert.equal((await db.sql`SELECT crier.mark_processed('theirs', ${id}) AS marked`)[0]!.marked, true);
  const sql = connectAs('worker');
  // Marking "theirs" processed would make its handler skip the event, and its delivery end done.
  await assert.rejects(sql`SELECT crier.mark_processed('theirs', ${id + 1})`, /CRIER_UNKNOWN_SUBSCRIPTION: no subscription 'theirs'/);
  await assert.rejects(sql`SELECT crier.is_processed('theirs', ${id})`, /CRIER_UNKNOWN_SUBSCRIPTION/);
  await refused(sql`INSERT INTO crier.processed (subscription, event_id) VALUES ('theirs', ${id + 1})`, 'insert a processed row of another subscription');
  assert.equal((await db.sql`SELECT count(*)::int AS n FROM crier.processed WHERE subscription = 'theirs'`)[0]!.n, 1);
  // Its own subscription works as before, and it reads its own rows only.
  assert.equal((await sql`SELECT crier.mark_processed('mine', ${id}) AS marked`)[0]!.marked, true);
  assert.equal((await sql`SELECT crier.mark_processed('mine', ${id}) AS marked`)[0]!.marked, false);
  assert.equal((await sql`SELECT crier.is_processed('mine', ${id}) AS done`)[0]!.done, true);
  assert.deepEqual((await sql`SELECT subscription FROM crier.processed`).map((r) => r.subscription), ['mine']);
});

test('worker: keeps the declared topics and policies of its subscription; only an operator changes them', async () => {
  const warnings: string[] = [];
  const widening = crier.worker({
    connection: urlAs('worker'),
    logger: { info() {}, warn: (m) => void warnings.push(m), error() {} },
    handleSignals: false,
    subscriptions: [{ name: 'mine', topics: ['#'], maxAttempts: 50, handler: () => {} }],
  });
  await widening.start();
  await widening.stop();
  const stored = async () => (await db.sql`SELECT topics, max_attempts FROM crier.subscriptions WHERE name = 'mine'`)[0];
  assert.deepEqual({ ...(await stored()) }, { topics: ['order.#'], max_attempts: 5 }, 'the worker ran with the stored subscription');
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0]!, /subscription "mine" is declared in the database with other settings than this worker's; it runs as declared: topics \["order\.#"\] \(declared\) vs \["#"\] \(this worker\), maxAttempts 5 \(declared\) vs 50 \(this worker\)/);
  assert.match(warnings[0]!, /crier subscriptions create mine --topics/);

  // Nor from SQL: no UPDATE right, no upsert, no create_subscription.
  const sql = connectAs('worker');
  await refused(sql`UPDATE crier.subscriptions SET topics = '{#}' WHERE name = 'mine'`, 'widen its topics');
  await refused(sql`
    INSERT INTO crier.subscriptions (name, topics) VALUES ('mine', '{#}')
    ON CONFLICT (name) DO UPDATE SET topics = excluded.topics`, 'widen its topics by an upsert');
  await refused(sql`SELECT crier.create_subscription('mine', '{#}')`, 'create_subscription');
  assert.deepEqual((await stored())!.topics, ['order.#']);

  // The operator may: it declares subscriptions ahead of their workers and changes them.
  const operator = connectAs('operator');
  assert.equal((await operator`SELECT crier.create_subscription('mine', '{order.#,refund.#}') AS o`)[0]!.o, 'updated');
  assert.equal((await operator`SELECT crier.create_subscription('mine', '{order.#,refund.#}') AS o`)[0]!.o, 'unchanged');
  assert.equal((await operator`SELECT crier.create_subscription('ahead', '{order.#}', p_max_attempts => 2) AS o`)[0]!.o, 'created');
  assert.deepEqual((await stored())!.topics, ['order.#', 'refund.#']);
  await operator`SELECT crier.remove_subscription('ahead')`;
  await operator`SELECT crier.create_subscription('mine', '{order.#}')`;
});

test('publisher: reaches idempotency keys only by publishing', async () => {
  const sql = connectAs('publisher');
  await db.sql`SELECT crier.publish('nobody.listens', '{}', p_idempotency_key => 'victim-key')`;
  // Neither another producer's keys nor a key taken for an event it never inserts.
  await refused(sql`SELECT * FROM crier.idempotency_keys`, 'read the idempotency keys');
  await refused(sql`
    INSERT INTO crier.idempotency_keys (topic, key, event_id, event_uuid)
    VALUES ('order.created', 'suppressed', 999999, gen_random_uuid())`, 'take a key for a made-up event');
  // Publishing with a key, from SQL and TypeScript, still finds the first publish.
  const viaSql = () => sql`SELECT crier.publish('nobody.listens', '{"n": 4}', p_idempotency_key => 'req-sql') AS id`;
  const [first] = await viaSql();
  const [again] = await viaSql();
  assert.equal(again!.id, first!.id);
  const batch = await sql.begin((tx) => crier.publishMany(tx, [
    { topic: 'nobody.listens', payload: {}, idempotencyKey: 'req-sql' },
    { topic: 'nobody.listens', payload: {}, idempotencyKey: 'req-new' },
    { topic: 'nobody.listens', payload: {} },
  ]));
  assert.deepEqual(batch.map((e) => e.duplicate), [true, false, false]);
  assert.equal(batch[0]!.id, String(first!.id));

  // A right an older crier granted is taken back when the grants are derived again (on upgrade).
  await db.sql.unsafe(`GRANT SELECT, INSERT ON crier.idempotency_keys TO "${prefix}_publisher"`);
  await db.sql.unsafe(`GRANT UPDATE (topics) ON crier.subscriptions TO "${prefix}_worker"`);
  await db.sql`SELECT crier.refresh_grants()`;
  await refused(sql`SELECT * FROM crier.idempotency_keys`, 'read the idempotency keys after an upgrade');
  await refused(connectAs('worker')`UPDATE crier.subscriptions SET topics = '{#}' WHERE name = 'mine'`, 'widen its topics after an upgrade');
});

test('auditor: reads the views and nothing more', async () => {
  const sql = connectAs('auditor');
  const rows = await sql`SELECT * FROM crier.test_backlog ORDER BY subscription, state`;
  assert.ok(rows.length > 0);
  for (const table of ['events', 'deliveries', 'subscriptions', 'subscription_grants', 'parked_workers', 'topic_routes']) {
    await refused(sql.unsafe(`SELECT * FROM crier.${table}`), `read crier.${table}`);
  }
  await refused(sql`SELECT crier.publish('order.x', '{}')`, 'publish');
  await refused(sql`SELECT crier.rescue_expired()`, 'rescue');
  await refused(sql`UPDATE crier.subscriptions SET paused = true`, 'pause');
});

test('nothing in the schema is executable by PUBLIC', async () => {
  const open = await db.sql`
    SELECT p.oid::regprocedure::text AS fn FROM pg_proc p
    WHERE p.pronamespace = 'crier'::regnamespace AND has_function_privilege('public', p.oid, 'EXECUTE')`;
  assert.deepEqual(open.map((r) => r.fn), []);
});

test('in a tenant schema, the default prefix is the schema name and grants stop at that schema', async () => {
  const schema = `${prefix}_tenant`;
  await migrate({ connection: db.url, schema });
  const roles = await db.sql.unsafe(`SELECT ${schema}.create_roles() AS role`);
  assert.deepEqual(roles.map((r) => r.role), kinds.map((k) => `${schema}_${k}`));
  const user = `${schema}_login`;
  await db.sql.unsafe(`CREATE ROLE "${user}" LOGIN PASSWORD '${password}' IN ROLE "${schema}_publisher"`);
  const url = new URL(db.url);
  url.username = user;
  url.password = password;
  const sql = postgres(url.toString(), { max: 1, onnotice: () => {} });
  try {
    const [event] = await createCrier({ schema }).publish(sql, 'order.created', { tenant: true }).then((e) => [e]);
    assert.match(event!.id, /^\d+$/);
    await refused(crier.publish(sql, 'order.created', {}).catch((e) => { throw e.cause ?? e; }), 'publish into the default schema');
  } finally {
    await sql.end({ timeout: 1 });
    await db.sql.unsafe(`DROP ROLE "${user}"`);
    await db.sql.unsafe(`SELECT ${schema}.drop_roles()`);
  }
});

test("worker: acks of a history 'failures' subscription delete its own rows, and an ordered key moves on", async () => {
  await db.sql`SELECT crier.create_subscription('forgetful', '{forget.#}', p_ordered => true, p_history => 'failures')`;
  await db.sql.unsafe(`INSERT INTO crier.subscription_grants (role, subscription) VALUES ('${prefix}_worker', 'forgetful')`);
  await db.sql`SELECT crier.publish('forget.x', '{"n": 1}', 'k'), crier.publish('forget.x', '{"n": 2}', 'k')`;
  const sql = connectAs('worker');
  const [claimed] = await sql`SELECT delivery_id::text AS id, attempt FROM crier.claim('forgetful', 'w', 10)`;
  const done = await sql`SELECT id::text FROM crier.complete('w', ${`{${claimed!.id}}`}::bigint[], '{1}'::int[]) AS id`;
  assert.deepEqual(done.map((r) => r.id), [claimed!.id]);
  const rows = await db.sql`SELECT id::text, state FROM crier.deliveries WHERE subscription = 'forgetful'`;
  assert.equal(rows.length, 1, 'the completed head was deleted');
  assert.equal(rows[0]!.state, 'pending', 'the next delivery of its key was promoted');
  // The DELETE right reaches only the rows of its granted subscriptions.
  assert.equal((await sql`DELETE FROM crier.deliveries WHERE subscription = 'theirs'`).count, 0);
  assert.ok((await db.sql`SELECT 1 FROM crier.deliveries WHERE subscription = 'theirs'`).length > 0);
});
