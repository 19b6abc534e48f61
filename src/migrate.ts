// Applies crier's migrations (db/migrations: drizzle-kit's generated SQL plus the hand-written SQL
// API) to the configured schema. Safe to run twice and from many processes at once: an advisory
// lock on a dedicated connection serialises migrators, and the Drizzle journal skips what is applied.
// Drizzle's migrator is imported when migrate() runs, so workers that never migrate never load it.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type postgres from 'postgres';
import { openClient, type Connection } from './connection.ts';
import { fromDatabaseError } from './errors.ts';
import { checkSchemaName, defaultSchema, inSchema } from './schema-name.ts';

export interface MigrateOptions {
  /** A connection URL or a postgres.js client (its settings are reused for one dedicated connection). */
  connection: Connection;
  schema?: string;
}

export interface MigrateResult {
  schema: string;
  /** Migration names applied by this call (empty when the schema was already up to date). */
  applied: string[];
}

const migrationsSchema = 'drizzle';

export function migrationsTable(schema: string): string {
  return schema === defaultSchema ? '__crier_migrations' : `__crier_migrations_${schema}`;
}

export function migrationsFolder(): string {
  // src/migrate.ts runs from the repository; dist/src/migrate.js from a build.
  for (const relative of ['../db/migrations', '../../db/migrations']) {
    const folder = fileURLToPath(new URL(relative, import.meta.url));
    if (existsSync(`${folder}/meta/_journal.json`)) return folder;
  }
  throw new Error('crier: cannot find db/migrations beside the library');
}

export async function migrate(options: MigrateOptions): Promise<MigrateResult> {
  const schema = checkSchemaName(options.schema ?? defaultSchema);
  const [{ drizzle }, { readMigrationFiles }] = await Promise.all([import('drizzle-orm/postgres-js'), import('drizzle-orm/migrator')]);
  const folder = migrationsFolder();
  const journal = JSON.parse(readFileSync(`${folder}/meta/_journal.json`, 'utf8')) as {
    entries: { tag: string; when: number }[];
  };
  const migrations = readMigrationFiles({ migrationsFolder: folder }).map((m) => ({
    ...m,
    sql: m.sql.map((statement) => inSchema(statement, schema)),
  }));
  const table = migrationsTable(schema);

  // One connection, so the session-level advisory lock covers every statement of the migration.
  const client = openClient(options.connection, { max: 1 });
  try {
    await client`SELECT pg_advisory_lock(hashtext(${`crier.migrate:${schema}`}))`;
    const before = await lastApplied(client, table);
    const db = drizzle(client);
    // dialect.migrate is what drizzle-orm/postgres-js/migrator calls; we feed it the rewritten SQL.
    await (db as unknown as { dialect: { migrate: Function }; session: unknown }).dialect.migrate(
      migrations,
      (db as unknown as { session: unknown }).session,
      { migrationsSchema, migrationsTable: table },
    );
    const applied = journal.entries.filter((e) => e.when > before).map((e) => e.tag);
    return { schema, applied };
  } catch (error) {
    throw fromDatabaseError(error);
  } finally {
    await client.end({ timeout: 5 });
  }
}

async function lastApplied(client: postgres.Sql, table: string): Promise<number> {
  const [exists] = await client`SELECT to_regclass(${`${migrationsSchema}.${table}`}) IS NOT NULL AS yes`;
  if (!exists?.yes) return 0;
  const [row] = await client.unsafe(`SELECT max(created_at)::float8 AS last FROM "${migrationsSchema}"."${table}"`);
  return Number(row?.last ?? 0);
}
