// Live workers and stuck deliveries (crier.workers, crier.subscription_stats, `crier workers`,
// `crier status`) with real processes: a worker SIGKILLed while its handler holds a delivery shows
// as stale, and its delivery as stuck with an age, long before the lease would bring it back.
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { after, before, test } from 'node:test';
import { createCrier } from './support/history.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/database.ts';
import { runCli } from './support/cli.ts';
import { handledTable, workerProcesses } from './support/processes.ts';

const crier = createCrier();
let db: TestDatabase;
const workers = workerProcesses(() => db.url);
const worker = workers.start;

async function json(args: string[]) {
  const run = await runCli(db.url, [...args, '--json']);
  assert.equal(run.code, 0, run.stderr);
  return JSON.parse(run.stdout);
}

before(async () => {
  db = await createTestDatabase('fleet_workers');
  await db.sql.unsafe(handledTable);
});
after(async () => {
  workers.killAll();
  await db.drop();
});

test('a SIGKILLed worker is stale in `crier workers` and its delivery stuck in `crier status` before its lease runs out', async () => {
  // A 60 s lease and a 200 ms heartbeat: the worker is stale 600 ms after its last beat, while the
  // delivery it held stays leased (and so unrescued) for a minute.
  const doomed = worker({ SUBSCRIPTION: 'fleet', TOPICS: 'fleet.#', WORKER_ID: 'doomed', LEASE: '60s', HEARTBEAT: '200ms', HANG_TOPIC: 'fleet.hang' });
  await doomed.waitFor(/ready/);

  const [live] = await json(['workers']);
  assert.equal(live.worker, 'doomed');
  assert.equal(live.status, 'live');
  assert.equal(live.host, hostname());
  assert.equal(live.pid, doomed.process.pid);
  assert.deepEqual(live.subscriptions, ['fleet']);
  assert.equal(live.version, '0.1.0');

  const event = await crier.publish(db.sql, 'fleet.hang', {});
  await doomed.waitFor(/handling/);
  const [before] = await json(['status']);
  assert.equal(before.running, 1);
  assert.equal(before.stuck, 0, 'a delivery held by a live worker is not stuck');
  assert.equal(before.liveWorkers, 1);
  await eventually(async () => (await json(['workers']))[0].running === 1, 5000, 'the worker holds one delivery');

  doomed.process.kill('SIGKILL');
  await doomed.exited;
  const killedAt = Date.now();

  const [gone] = await eventually(async () => {
    const workers = await json(['workers']);
    return workers[0].status === 'stale' ? workers : undefined;
  }, 20_000, 'the killed worker shows as stale');
  assert.equal(gone.running, 1, 'it still holds the delivery');
  const [status] = await eventually(async () => {
    const stats = await json(['status']);
    return stats[0].stuck === 1 ? stats : undefined;
  }, 20_000, 'its delivery shows as stuck');
  assert.equal(status.liveWorkers, 0);
  assert.equal(status.running, 1);
  assert.ok(status.stuckSeconds > 0, `stuck for ${status.stuckSeconds}s`);
  const [lease] = await db.sql`SELECT locked_until > now() AS held FROM crier.deliveries WHERE event_id = ${event.id}`;
  assert.ok(lease!.held, `seen before the lease ran out (${Date.now() - killedAt} ms after the kill)`);

  // What an operator reads.
  const text = await runCli(db.url, ['status']);
  assert.match(text.stdout, /STUCK/);
  assert.match(text.stdout, /fleet\s+0\s+1\s+1 \(\d+(ms|s)\)/);
  const workers = await runCli(db.url, ['workers']);
  assert.match(workers.stdout, /doomed\s+stale\s+/);
  const shown = await runCli(db.url, ['events', 'show', event.id]);
  assert.match(shown.stdout, /doomed \(stale, last seen \d+(ms|s) ago\)/);
  assert.match(shown.stdout, /LEASE UNTIL/);

  // Once the lease has run out too, the age counts from the worker's last sign of life.
  await db.sql`UPDATE crier.deliveries SET locked_until = now() - interval '5 seconds' WHERE event_id = ${event.id}`;
  const [expired] = await json(['status']);
  assert.equal(expired.stuck, 1);
  assert.ok(expired.stuckSeconds >= 5, `stuck for ${expired.stuckSeconds}s`);
});

test('a worker stopped cleanly says so; workers gone for a day are pruned when one registers', async () => {
  const tidy = worker({ SUBSCRIPTION: 'tidy', TOPICS: 'tidy.#', WORKER_ID: 'tidy', HEARTBEAT: '200ms' });
  await tidy.waitFor(/ready/);
  tidy.process.kill('SIGTERM');
  await tidy.exited;
  const workers = await json(['workers', '--subscription', 'tidy']);
  assert.equal(workers.length, 1);
  assert.equal(workers[0].status, 'stopped');
  assert.ok(workers[0].stoppedAt);

  await db.sql`UPDATE crier.registered_workers SET last_seen_at = now() - interval '25 hours', stopped_at = now() - interval '25 hours' WHERE id = 'tidy'`;
  assert.equal((await json(['workers', '--gone', '2d'])).filter((w: { worker: string }) => w.worker === 'tidy').length, 1);
  await db.sql`SELECT crier.register_worker('newcomer', 'h', 1, '0.1.0', '{tidy}', 1000)`;
  assert.equal((await db.sql`SELECT 1 FROM crier.registered_workers WHERE id = 'tidy'`).length, 0, 'pruned');
});
