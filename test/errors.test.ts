// A database crier cannot use is reported as one actionable CrierError, not a stack of driver
// internals: unreachable server, missing database, never-migrated schema.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import postgres from 'postgres';
import { CrierError, migrate } from '../src/index.ts';
import { createCrier } from './support/history.ts';
import { createTestDatabase, databaseUrl, eventually, type TestDatabase } from './support/database.ts';

const crier = createCrier();
const unreachable = (() => {
  const url = new URL(databaseUrl('crier_nowhere'));
  url.hostname = '127.0.0.1';
  url.port = '1';
  return url.toString();
})();
const missingDatabase = databaseUrl('crier_test_no_such_database_x9');

let unmigrated: TestDatabase;
let migrated: TestDatabase;
before(async () => {
  unmigrated = await createTestDatabase('errors_unmigrated', { migrate: false });
  migrated = await createTestDatabase('errors_migrated');
});
after(async () => {
  await unmigrated.drop();
  await migrated.drop();
});

function startWorker(connection: string, schema?: string) {
  const handle = schema ? createCrier({ schema }) : crier;
  return handle
    .worker({
      connection,
      handleSignals: false,
      logger: false,
      subscriptions: [{ name: 'errors', topics: ['errors.#'], handler: () => {} }],
    })
    .start();
}

const oneLine = (code: string, pattern: RegExp) => (error: unknown) => {
  assert.ok(error instanceof CrierError, `expected a CrierError, got ${String(error)}`);
  assert.equal(error.code, code, error.message);
  assert.ok(!error.message.includes('\n'), `one line: ${JSON.stringify(error.message)}`);
  assert.match(error.message, pattern);
  return true;
};

test('a worker on an unreachable server rejects with CRIER_CONNECTION in one line', async () => {
  await assert.rejects(startWorker(unreachable), oneLine('CRIER_CONNECTION', /^CRIER_CONNECTION: cannot connect to Postgres.*refused.*DATABASE_URL/));
});

test('a worker on a database that does not exist rejects with CRIER_CONNECTION naming it', async () => {
  await assert.rejects(startWorker(missingDatabase), oneLine('CRIER_CONNECTION', /crier_test_no_such_database_x9.*Create the database or fix DATABASE_URL/));
});

test('publish and migrate report the same CRIER_CONNECTION', async () => {
  const sql = postgres(unreachable, { max: 1, onnotice: () => {} });
  try {
    await assert.rejects(crier.publish(sql, 'errors.x', {}), oneLine('CRIER_CONNECTION', /refused/));
  } finally {
    await sql.end({ timeout: 1 });
  }
  await assert.rejects(migrate({ connection: unreachable }), oneLine('CRIER_CONNECTION', /refused/));
  await assert.rejects(migrate({ connection: missingDatabase }), oneLine('CRIER_CONNECTION', /does not exist/));
});

test('a worker on an unmigrated database (or schema) rejects with CRIER_NOT_MIGRATED', async () => {
  await assert.rejects(startWorker(unmigrated.url), oneLine('CRIER_NOT_MIGRATED', /crier migrate/));
  await assert.rejects(startWorker(migrated.url, 'tenant_missing'), oneLine('CRIER_NOT_MIGRATED', /tenant_missing.*crier migrate/));
  // A failed start leaves nothing behind in the database it reached.
  await eventually(async () => {
    const [row] = await unmigrated.sql`
      SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = ${unmigrated.name} AND pid <> pg_backend_pid()`;
    return row!.n === 0;
  }, 5000, 'the failed worker to close its connections');
});
