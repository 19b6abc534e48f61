// db/schema.sql is the dump of a freshly migrated database: regenerate it with `npm run db:dump`
// whenever db/schema.ts, db/migrations or db/sql change. Needs a pg_dump at least as new as the
// server (pg_dump refuses newer servers): without one the test is skipped with the reason locally,
// and fails in CI (test/support/required.ts), where pg_dump is always installed.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { dumpSchema, findPgDump, schemaDumpPath } from '../db/dump.ts';
import { migrate } from '../src/migrate.ts';
import { createTestDatabase, serverUrl } from './support/database.ts';
import { requireAll } from './support/required.ts';

/** Why this machine's pg_dump cannot dump the test server, or undefined when it can. */
async function pgDumpProblem(pgDump: string | null): Promise<string | undefined> {
  if (!pgDump) return 'pg_dump not found (install the Postgres client tools, or set PG_DUMP)';
  const { stdout } = await promisify(execFile)(pgDump, ['--version']);
  const dumpMajor = Number(/\d+/.exec(stdout)?.[0]);
  const sql = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql`SELECT current_setting('server_version_num')::int / 10000 AS major`;
    const serverMajor = row!.major as number;
    if (dumpMajor < serverMajor) return `${pgDump} is version ${dumpMajor}, older than the server (${serverMajor}): set PG_DUMP to a pg_dump ${serverMajor}`;
  } finally {
    await sql.end();
  }
  return undefined;
}

test('db/schema.sql is the schema a fresh migration makes (npm run db:dump)', async (t) => {
  const pgDump = await findPgDump(serverUrl);
  const problem = await pgDumpProblem(pgDump);
  if (problem) {
    if (requireAll) assert.fail(`${problem}: CI must check db/schema.sql`);
    t.skip(problem);
    return;
  }
  // Migrated here, not by createTestDatabase: the run's history default (npm test -- --history)
  // changes the test databases, and this one must be exactly what a fresh migration makes.
  const db = await createTestDatabase('schema_dump', { migrate: false });
  try {
    await migrate({ connection: db.url });
    const fresh = (await dumpSchema(db.url, pgDump!)).split('\n');
    const committed = readFileSync(schemaDumpPath, 'utf8').split('\n');
    const at = fresh.findIndex((line, i) => line !== committed[i]);
    assert.ok(
      at === -1 && fresh.length === committed.length,
      `db/schema.sql is stale (first difference at line ${at + 1}: ${JSON.stringify(committed[at])} ` +
        `should be ${JSON.stringify(fresh[at])}): run npm run db:dump and commit it`,
    );
  } finally {
    await db.drop();
  }
});
