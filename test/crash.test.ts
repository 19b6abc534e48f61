// Workers as real processes: several side by side, killed with SIGKILL, cut off from Postgres,
// stopped with signals. Nothing may be lost, and no delivery may be handled by two workers at once.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createCrier } from './support/history.ts';
import { createTestDatabase, deliveryOutcomes, deliveryStates, eventually, type TestDatabase } from './support/database.ts';
import { handledTable, workerProcesses } from './support/processes.ts';

const crier = createCrier();
let db: TestDatabase;
const workers = workerProcesses(() => db.url);
const worker = workers.start;

async function publish(topic: string, count: number) {
  return db.sql.begin((tx) =>
    crier.publishMany(tx, Array.from({ length: count }, (_, n) => ({ topic, payload: { n } }))),
  );
}

before(async () => {
  db = await createTestDatabase('crash');
  await db.sql.unsafe(handledTable);
});
after(async () => {
  workers.killAll();
  await db.drop();
});

test('two worker processes on one subscription handle all of N, none twice', async () => {
  const a = worker({ SUBSCRIPTION: 'shared', TOPICS: 'share.#', WORKER_ID: 'a', HANDLER_MS: '3', CONCURRENCY: '4' });
  const b = worker({ SUBSCRIPTION: 'shared', TOPICS: 'share.#', WORKER_ID: 'b', HANDLER_MS: '3', CONCURRENCY: '4' });
  await Promise.all([a.waitFor(/ready/), b.waitFor(/ready/)]);
  const n = 400;
  for (let i = 0; i < 4; i++) await publish('share.item', n / 4);
  await eventually(async () => (await deliveryOutcomes(db.sql, 'shared', n)).succeeded === n, 30_000, `${n} deliveries done`);
  const [counts] = await db.sql`
    SELECT count(*)::int AS handled, count(DISTINCT event_id)::int AS distinct_events,
           count(*) FILTER (WHERE worker = 'a')::int AS by_a, count(*) FILTER (WHERE worker = 'b')::int AS by_b
    FROM handled h JOIN crier.events e ON e.id = h.event_id WHERE e.topic = 'share.item'`;
  assert.equal(counts!.distinct_events, n);
  assert.equal(counts!.handled, n, 'no delivery handled twice');
  assert.ok(counts!.by_a > 0 && counts!.by_b > 0, `both workers took part (a=${counts!.by_a}, b=${counts!.by_b})`);
  a.process.kill('SIGTERM');
  b.process.kill('SIGTERM');
  await Promise.all([a.exited, b.exited]);
});

test('a worker whose slots are all busy keeps going when woken', async () => {
  // Regression: a wake-up (NOTIFY, reconnect) arriving while every slot was busy used to spin the
  // claim loop on resolved promises, starving timers and sockets: the worker stalled for good.
  const busy = worker({ SUBSCRIPTION: 'busy', TOPICS: 'busy.#', WORKER_ID: 'busy', HANDLER_MS: '300', CONCURRENCY: '2' });
  await busy.waitFor(/ready/);
  await publish('busy.item', 6);
  await busy.waitFor(/handling/);
  for (let i = 0; i < 3; i++) await db.sql`SELECT pg_notify('crier', 'busy'), pg_notify('crier', '*')`;
  await eventually(async () => (await deliveryOutcomes(db.sql, 'busy', 6)).succeeded === 6, 20_000, 'all 6 deliveries done');
  const [{ handled }] = (await db.sql`
    SELECT count(DISTINCT event_id)::int AS handled FROM handled h JOIN crier.events e ON e.id = h.event_id WHERE e.topic = 'busy.item'`) as unknown as [{ handled: number }];
  assert.equal(handled, 6, 'the handler recorded each');
  busy.process.kill('SIGTERM');
  await busy.exited;
});

// Under history 'failures' too: a delivery that lost a lease keeps its row, with the error.
for (const history of ['full', 'failures'] as const) {
  test(`a worker killed with SIGKILL mid-handler loses nothing: another completes it after the lease (history ${history})`, async () => {
    const doomed = worker({ SUBSCRIPTION: `crashy-${history}`, TOPICS: `crash-${history}.#`, WORKER_ID: `doomed-${history}`, HANG_TOPIC: `crash-${history}.hang`, LEASE: '1s', HISTORY: history });
    await doomed.waitFor(/ready/);
    const [event] = await publish(`crash-${history}.hang`, 1);
    await doomed.waitFor(/handling/);
    doomed.process.kill('SIGKILL');
    await doomed.exited;
    const [running] = await db.sql`SELECT state, worker FROM crier.deliveries WHERE event_id = ${event!.id}`;
    assert.deepEqual({ ...running }, { state: 'running', worker: `doomed-${history}` });

    const rescuer = worker({ SUBSCRIPTION: `crashy-${history}`, TOPICS: `crash-${history}.#`, WORKER_ID: `rescuer-${history}`, LEASE: '1s', HISTORY: history });
    await eventually(async () => (await deliveryStates(db.sql, `crashy-${history}`)).done === 1, 15_000, 'delivery done by the second worker, its row kept (it lost a lease)');
    const [row] = await db.sql`SELECT attempts, worker, errors->0->>'error' AS first_error FROM crier.deliveries WHERE event_id = ${event!.id}`;
    assert.deepEqual({ ...row }, { attempts: 2, worker: `rescuer-${history}`, first_error: 'lease expired' });
    const handled = await db.sql`SELECT worker, attempt FROM handled WHERE event_id = ${event!.id} ORDER BY attempt`;
    assert.deepEqual(handled.map((h) => ({ ...h })), [{ worker: `doomed-${history}`, attempt: 1 }, { worker: `rescuer-${history}`, attempt: 2 }]);
    rescuer.process.kill('SIGTERM');
    await rescuer.exited;
  });
}

test('a worker survives pg_terminate_backend of all its connections and carries on', async () => {
  // The worker owns its pool here (a URL), as the README advises: postgres.js 3.4.9 can leave a
  // query of a shared client unsettled after its connections are killed repeatedly.
  const survivor = worker({ SUBSCRIPTION: 'survivor', TOPICS: 'survive.#', WORKER_ID: 'survivor', POLL: '1s', OWN_POOL: '1' });
  await survivor.waitFor(/ready/);
  for (let round = 1; round <= 3; round++) {
    const [{ killed }] = (await db.sql`
      SELECT count(pg_terminate_backend(pid))::int AS killed FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid()`) as unknown as [{ killed: number }];
    assert.ok(killed >= 1, 'the worker had connections to kill');
    await publish('survive.tick', 5);
    await eventually(async () => (await deliveryOutcomes(db.sql, 'survivor', 5 * round)).succeeded === 5 * round, 20_000, `round ${round} handled`).catch(
      async (error: Error) => {
        throw new Error(`${error.message}; states ${JSON.stringify(await deliveryStates(db.sql, 'survivor'))}; worker output:\n${survivor.output()}`);
      },
    );
  }
  const [{ handled }] = (await db.sql`
    SELECT count(DISTINCT event_id)::int AS handled FROM handled h JOIN crier.events e ON e.id = h.event_id WHERE e.topic = 'survive.tick'`) as unknown as [{ handled: number }];
  assert.equal(handled, 15, 'the handler recorded each');
  await survivor.waitFor(/LISTEN connection restored/);
  survivor.process.kill('SIGTERM');
  const exit = await survivor.exited;
  assert.equal(exit.signal, 'SIGTERM');
});

test('SIGTERM stops gracefully and hands back what could not finish; a second signal exits at once', async () => {
  const graceful = worker({ SUBSCRIPTION: 'graceful', TOPICS: 'graceful.#', WORKER_ID: 'graceful', HANG_TOPIC: 'graceful.hang', SHUTDOWN_TIMEOUT: '300ms' });
  await graceful.waitFor(/ready/);
  const [event] = await publish('graceful.hang', 1);
  await graceful.waitFor(/handling/);
  graceful.process.kill('SIGTERM');
  const exit = await graceful.exited;
  assert.equal(exit.signal, 'SIGTERM', graceful.output());
  assert.match(graceful.output(), /released 1 unfinished deliveries/);
  const [row] = await db.sql`SELECT state, attempts, worker FROM crier.deliveries WHERE event_id = ${event!.id}`;
  assert.deepEqual({ ...row }, { state: 'pending', attempts: 0, worker: null }, 'released without burning the attempt');

  const stubborn = worker({ SUBSCRIPTION: 'graceful', TOPICS: 'graceful.#', WORKER_ID: 'stubborn', HANG_TOPIC: 'graceful.hang', SHUTDOWN_TIMEOUT: '60s' });
  await stubborn.waitFor(/handling/);
  stubborn.process.kill('SIGTERM');
  await stubborn.waitFor(/stopping gracefully/);
  stubborn.process.kill('SIGTERM');
  const second = await stubborn.exited;
  assert.equal(second.code, 130);
});
