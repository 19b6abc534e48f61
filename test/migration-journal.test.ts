// Applying drizzle-kit's migrations without drizzle-orm (src/migration-journal.ts) gives the same
// database and the same bookkeeping as Drizzle's migrator, and each takes over from the other.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import postgres from 'postgres';
import { migrate, migrationsFolder, migrationsTable } from '../src/migrate.ts';
import { applyJournal, readJournal } from '../src/migration-journal.ts';
import { defaultSchema } from '../src/schema-name.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

let byDrizzle: TestDatabase;
let byJournal: TestDatabase;
before(async () => {
  [byDrizzle, byJournal] = await Promise.all([createTestDatabase('journal_drizzle'), createTestDatabase('journal_own', { migrate: false })]);
});
after(async () => {
  await Promise.all([byDrizzle?.drop(), byJournal?.drop()]);
});

const bookkeeping = { schema: 'drizzle', table: migrationsTable(defaultSchema) };

async function withClient<T>(url: string, use: (client: postgres.Sql) => Promise<T>): Promise<T> {
  const client = postgres(url, { max: 1, onnotice: () => {} });
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

/** The tables, tables' columns, functions and recorded migrations of a database, to compare two. */
async function shape(sql: postgres.Sql) {
  const columns = await sql`
    SELECT c.relname || '.' || a.attname || ':' || format_type(a.atttypid, a.atttypmod) AS c
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid
    WHERE n.nspname = 'crier' AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1`;
  const functions = await sql`
    SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS f
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'crier' ORDER BY 1`;
  const recorded = await sql.unsafe(`SELECT hash, created_at::text FROM "${bookkeeping.schema}"."${bookkeeping.table}" ORDER BY id`);
  return { columns: columns.map((r) => r.c), functions: functions.map((r) => r.f), recorded: recorded.map((r) => `${r.hash}@${r.created_at}`) };
}

test('a fresh database migrated without drizzle-orm matches one migrated by Drizzle, and neither migrates again', async () => {
  const migrations = readJournal(migrationsFolder());
  const applied = await withClient(byJournal.url, (client) => applyJournal(client, migrations, bookkeeping));
  assert.deepEqual(applied, migrations.map((m) => m.tag));
  assert.ok(applied.length > 0);

  const [own, drizzles] = await Promise.all([shape(byJournal.sql), shape(byDrizzle.sql)]);
  assert.deepEqual(own, drizzles);
  assert.ok(own.functions.length > 0 && own.columns.length > 0);

  assert.deepEqual(await withClient(byJournal.url, (client) => applyJournal(client, migrations, bookkeeping)), [], 'a second run applies nothing');
  assert.deepEqual(await withClient(byDrizzle.url, (client) => applyJournal(client, migrations, bookkeeping)), [], 'it takes over from Drizzle');
  assert.deepEqual((await migrate({ connection: byJournal.url })).applied, [], 'and Drizzle takes over from it');
});

test('a failing statement rolls back the whole run', async () => {
  const migrations = readJournal(migrationsFolder());
  const broken = [...migrations, { tag: '9999_broken', when: Number.MAX_SAFE_INTEGER, hash: 'x', statements: ['CREATE TABLE crier.half_done (id int)', 'SELECT no_such_function()'] }];
  await withClient(byDrizzle.url, async (client) => {
    await assert.rejects(applyJournal(client, broken, bookkeeping), /no_such_function/);
    const [row] = await client`SELECT to_regclass('crier.half_done') IS NULL AS gone`;
    assert.equal(row!.gone, true);
  });
});
