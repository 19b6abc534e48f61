// db/schema.sql is the dump of a freshly migrated database: regenerate it with `npm run db:dump`
// whenever db/schema.ts, db/migrations or db/sql change. Needs pg_dump: without it the test is
// skipped with the reason locally, and fails in CI (CI=true), where pg_dump is always installed.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { dumpSchema, findPgDump, schemaDumpPath } from '../db/dump.ts';
import { createTestDatabase, serverUrl } from './support/database.ts';

test('db/schema.sql is the schema a fresh migration makes (npm run db:dump)', async (t) => {
  const pgDump = await findPgDump(serverUrl);
  if (!pgDump) {
    const reason = 'pg_dump not found (install the Postgres client tools, or set PG_DUMP)';
    if (process.env.CI) assert.fail(`${reason}: CI must check db/schema.sql`);
    t.skip(reason);
    return;
  }
  const db = await createTestDatabase('schema_dump');
  try {
    const fresh = (await dumpSchema(db.url, pgDump)).split('\n');
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
