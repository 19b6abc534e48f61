// Applying drizzle-kit's migrations without drizzle-orm (src/migration-journal.ts) gives the same
// database and the same bookkeeping as Drizzle's own migrator, and each takes over from the other.
// The migrations are a small drizzle-kit style folder written here (journal, statement breakpoints),
// so the comparison does not depend on what crier's own migrate() runs around its journal.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import postgres from 'postgres';
import { drizzle } from 'drizzle-orm/postgres-js';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import { applyJournal, readJournal } from '../src/migration-journal.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

const bookkeeping = { schema: 'drizzle', table: '__journal_test' };
const entries = [
  { tag: '0000_tables', when: 1_700_000_000_000, sql: 'CREATE TABLE shop.orders (id int PRIMARY KEY, total numeric NOT NULL);\n--> statement-breakpoint\nCREATE INDEX orders_total ON shop.orders (total);' },
  { tag: '0001_functions', when: 1_700_000_100_000, sql: 'CREATE FUNCTION shop.double(x int) RETURNS int LANGUAGE sql AS $$ SELECT x * 2 $$;\n--> statement-breakpoint\nALTER TABLE shop.orders ADD COLUMN note text;' },
];
let folder: string;
let byDrizzle: TestDatabase;
let byJournal: TestDatabase;

/** A drizzle-kit folder holding the first `count` entries. */
function writeFolder(count: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'crier-journal-'));
  mkdirSync(join(dir, 'meta'));
  const used = entries.slice(0, count);
  writeFileSync(join(dir, 'meta/_journal.json'), JSON.stringify({ version: '7', dialect: 'postgresql', entries: used.map((e, idx) => ({ idx, version: '7', when: e.when, tag: e.tag, breakpoints: true })) }));
  for (const e of used) writeFileSync(join(dir, `${e.tag}.sql`), e.sql);
  return dir;
}

before(async () => {
  folder = writeFolder(entries.length);
  [byDrizzle, byJournal] = await Promise.all([createTestDatabase('journal_drizzle', { migrate: false }), createTestDatabase('journal_own', { migrate: false })]);
  await Promise.all([byDrizzle.sql`CREATE SCHEMA shop`, byJournal.sql`CREATE SCHEMA shop`]);
});
after(async () => {
  rmSync(folder, { recursive: true, force: true });
  await Promise.all([byDrizzle?.drop(), byJournal?.drop()]);
});

async function withClient<T>(url: string, use: (client: postgres.Sql) => Promise<T>): Promise<T> {
  const client = postgres(url, { max: 1, onnotice: () => {} });
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

/** Drizzle's migrator (what drizzle-orm/postgres-js/migrator runs) on `from`. */
function drizzleMigrate(url: string, from: string): Promise<void> {
  return withClient(url, async (client) => {
    const db = drizzle(client) as unknown as { dialect: { migrate: Function }; session: unknown };
    await db.dialect.migrate(readMigrationFiles({ migrationsFolder: from }), db.session, { migrationsSchema: bookkeeping.schema, migrationsTable: bookkeeping.table });
  });
}

async function shape(sql: postgres.Sql) {
  const columns = await sql`
    SELECT c.relname || '.' || a.attname || ':' || format_type(a.atttypid, a.atttypmod) AS c
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid
    WHERE n.nspname = 'shop' AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1`;
  const functions = await sql`SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'shop' ORDER BY 1`;
  const recorded = await sql.unsafe(`SELECT hash, created_at::text FROM "${bookkeeping.schema}"."${bookkeeping.table}" ORDER BY id`);
  return { columns: columns.map((r) => r.c), functions: functions.map((r) => r.proname), recorded: recorded.map((r) => `${r.hash}@${r.created_at}`) };
}

test('the same database and records as Drizzle, and each takes over from the other', async () => {
  // Drizzle applies the first migration, then this takes over; the other way round on the second database.
  const first = writeFolder(1);
  try {
    await drizzleMigrate(byDrizzle.url, first);
    assert.deepEqual(await withClient(byDrizzle.url, (client) => applyJournal(client, readJournal(folder), bookkeeping)), ['0001_functions']);
    assert.deepEqual(await withClient(byJournal.url, (client) => applyJournal(client, readJournal(first), bookkeeping)), ['0000_tables']);
    await drizzleMigrate(byJournal.url, folder);
  } finally {
    rmSync(first, { recursive: true, force: true });
  }
  const [own, drizzles] = await Promise.all([shape(byJournal.sql), shape(byDrizzle.sql)]);
  assert.deepEqual(own, drizzles);
  assert.equal(own.recorded.length, 2);
  assert.ok(own.columns.includes('orders.note:text') && own.functions.includes('double'));
  assert.deepEqual(await withClient(byJournal.url, (client) => applyJournal(client, readJournal(folder), bookkeeping)), [], 'nothing twice');
});

test('statements can be rewritten (another schema), and a failing one rolls back the whole run', async () => {
  const broken = [
    ...readJournal(folder, (statement) => statement.replaceAll('shop.', 'elsewhere.')),
    { tag: '9999_broken', when: Number.MAX_SAFE_INTEGER, hash: 'x', statements: ['SELECT no_such_function()'] },
  ];
  await withClient(byJournal.url, async (client) => {
    await client`CREATE SCHEMA elsewhere`;
    await assert.rejects(applyJournal(client, broken, { schema: bookkeeping.schema, table: '__journal_elsewhere' }), /no_such_function/);
    const [row] = await client`SELECT to_regclass('elsewhere.orders') IS NULL AS gone`;
    assert.equal(row!.gone, true);
    assert.deepEqual(await applyJournal(client, broken.slice(0, -1), { schema: bookkeeping.schema, table: '__journal_elsewhere' }), ['0000_tables', '0001_functions']);
    const [made] = await client`SELECT elsewhere.double(21) AS n`;
    assert.equal(made!.n, 42);
  });
});
