// The crier command never hangs on its database, with real processes: a server that accepts TCP and
// never answers fails it within 10 s (exit 1, one line); Ctrl-C while a query waits on a lock
// cancels that query on the server and exits 130 at once; --statement-timeout bounds a statement.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import postgres from 'postgres';
import { createTestDatabase, eventually, type TestDatabase } from './support/database.ts';
import { cli, ensureBuilt } from './support/cli.ts';

let db: TestDatabase;

before(async () => {
  ensureBuilt();
  db = await createTestDatabase('fleet_cli_hangs');
});
after(async () => db.drop());

/** `crier ...args` as a process: its pid, its output so far, and how and when it ended. */
function crier(args: string[], env: Record<string, string> = {}) {
  const started = Date.now();
  const child = spawn(process.execPath, [cli, ...args], {
    env: { ...process.env, NODE_TEST_CONTEXT: undefined, DATABASE_URL: db.url, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; ms: number; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code) => resolve({ code, ms: Date.now() - started, stdout, stderr })),
  );
  return { child, exited };
}

/** The sessions of one crier process (they carry its pid in application_name). */
async function sessionsOf(pid: number) {
  return db.sql`SELECT state, wait_event_type, query FROM pg_stat_activity WHERE application_name LIKE ${`crier-cli-${pid}-%`}`;
}

/** Runs `body` while another session holds LOCK TABLE crier.deliveries. */
async function withDeliveriesLocked(body: () => Promise<void>) {
  const holder = postgres(db.url, { max: 1, onnotice: () => {} });
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const holding = holder.begin(async (tx) => {
    await tx`LOCK TABLE crier.deliveries`;
    await released;
  });
  try {
    await body();
  } finally {
    release();
    await holding;
    await holder.end();
  }
}

test('a server that accepts TCP and never answers: exit 1 within 10 s, one line', async () => {
  const silent: Socket[] = [];
  const server = createServer((socket) => void silent.push(socket)); // reads nothing, says nothing
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  try {
    const run = await crier(['status'], { DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/x` }).exited;
    console.log(`# exited ${run.code} after ${run.ms} ms`);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^crier status: CRIER_CONNECTION: no answer from Postgres at 127\.0\.0\.1:\d+ within 7s/);
    assert.equal(run.stderr.trimEnd().split('\n').length, 1, run.stderr);
    assert.ok(run.ms <= 10_000, `exited after ${run.ms} ms`);
    assert.ok(silent.length > 0, 'it did connect');
  } finally {
    for (const socket of silent) socket.destroy();
    server.close();
  }
});

for (const [signal, exit] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  test(`${signal} while crier status waits on a lock cancels its query on the server and exits ${exit}`, async () => {
    await withDeliveriesLocked(async () => {
      const { child, exited } = crier(['status']);
      await eventually(async () => (await sessionsOf(child.pid!)).some((s) => s.wait_event_type === 'Lock'), 20_000, 'status waiting on the lock');
      const signalled = Date.now();
      child.kill(signal);
      const run = await Promise.race([
        exited,
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`still running 10 s after ${signal}`)), 10_000).unref()),
      ]).finally(() => child.kill('SIGKILL'));
      const ms = Date.now() - signalled;
      console.log(`# ${signal}: exited ${run.code} ${ms} ms after the signal`);
      assert.equal(run.code, exit, run.stderr);
      assert.match(run.stderr, /^crier status: interrupted; its running query was cancelled on the server\n$/);
      assert.ok(ms <= 5000, `exited ${ms} ms after ${signal} (the promise is 2 s; 5 s allows for a loaded machine)`);
      await eventually(async () => (await sessionsOf(child.pid!)).length === 0, 5000, 'no session of it left on the server');
    });
  });
}

test('--statement-timeout (and CRIER_STATEMENT_TIMEOUT) bounds each statement of the command', async () => {
  await withDeliveriesLocked(async () => {
    const byOption = await crier(['status', '--statement-timeout', '300ms']).exited;
    assert.equal(byOption.code, 1, byOption.stderr);
    assert.match(byOption.stderr, /statement timeout/);
    const byEnv = await crier(['status', '--json'], { CRIER_STATEMENT_TIMEOUT: '300ms' }).exited;
    assert.equal(byEnv.code, 1, byEnv.stderr);
    assert.match(byEnv.stderr, /statement timeout/);
  });
  const bad = await crier(['status', '--statement-timeout', 'soon']).exited;
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--statement-timeout: "soon" is not a duration/);
  const fine = await crier(['status', '--statement-timeout', '5s']).exited;
  assert.equal(fine.code, 0, fine.stderr);
});
