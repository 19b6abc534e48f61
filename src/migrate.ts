// Brings a database's crier schema up to date: the tables (drizzle-kit migrations in db/migrations,
// generated from db/schema.ts), then every function, trigger and view (db/sql, one concept per file,
// in the order of sqlFiles), then the roles' grants. Safe to run twice and from many processes at
// once: an advisory lock on a dedicated connection serialises migrators; the Drizzle journal skips
// the table migrations already applied, and a db/sql file is applied again only when its content
// changed (its hash is recorded in drizzle.__crier_sql_files, or __crier_sql_files_<schema>).
// The table migrations are applied by migration-journal.ts, with Drizzle's bookkeeping but without
// drizzle-orm, an optional peer.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type postgres from 'postgres';
import { openClient, type Connection } from './connection.ts';
import { CrierError, fromDatabaseError } from './errors.ts';
import { applyJournal, readJournal, type JournalMigration } from './migration-journal.ts';
import { checkSchemaName, defaultSchema, inSchema } from './schema-name.ts';

export interface MigrateOptions {
  /** A connection URL or a postgres.js client (its settings are reused for one dedicated connection). */
  connection: Connection;
  schema?: string;
}

export interface MigrateResult {
  schema: string;
  /**
   * What this call applied (empty when the schema was already up to date): table migrations by
   * their tag, then db/sql files as `sql/<file>`.
   */
  applied: string[];
}

/**
 * The db/sql files, in the order migrate() applies them. `beforeTables` are needed by the tables
 * themselves (a CHECK and a generated column call their functions) and depend on no table.
 * A file may only use what earlier files (or the tables) define.
 */
export const sqlFiles = {
  beforeTables: ['limits.sql', 'topics.sql', 'catalog/json_schema.sql'],
  afterTables: [
    'partitions.sql',
    'routing.sql',
    'wake.sql',
    'ordering.sql',
    'fan_out.sql',
    'publish.sql',
    'deliveries/claim.sql',
    'deliveries/ack.sql',
    'deliveries/leases.sql',
    'deliveries/processed.sql',
    'workers.sql',
    'views.sql',
    'metrics.sql',
    'operator/subscriptions.sql',
    'operator/requeue.sql',
    'operator/replay.sql',
    'operator/prune.sql',
    'causation.sql',
    'catalog/validation.sql',
    'roles.sql',
  ],
} as const;

const migrationsSchema = 'drizzle';

export function migrationsTable(schema: string): string {
  return schema === defaultSchema ? '__crier_migrations' : `__crier_migrations_${schema}`;
}

/** Where the hashes of the db/sql files applied to a schema are kept (one row per file). */
export function sqlFilesTable(schema: string): string {
  return schema === defaultSchema ? '__crier_sql_files' : `__crier_sql_files_${schema}`;
}

function dbFolder(): string {
  // src/migrate.ts runs from the repository; dist/src/migrate.js from a build.
  for (const relative of ['../db', '../../db']) {
    const folder = fileURLToPath(new URL(relative, import.meta.url));
    if (existsSync(`${folder}/migrations/meta/_journal.json`) && existsSync(`${folder}/sql`)) return folder;
  }
  throw new Error('crier: cannot find db/migrations and db/sql beside the library');
}

export function migrationsFolder(): string {
  return `${dbFolder()}/migrations`;
}

export function sqlFolder(): string {
  return `${dbFolder()}/sql`;
}

export async function migrate(options: MigrateOptions): Promise<MigrateResult> {
  const schema = checkSchemaName(options.schema ?? defaultSchema);
  const migrations = readJournal(migrationsFolder(), (statement) => inSchema(statement, schema));
  const table = migrationsTable(schema);

  // One connection, so the session-level advisory lock covers every statement of the migration.
  const client = openClient(options.connection, { max: 1 });
  try {
    await client`SELECT pg_advisory_lock(hashtext(${`crier.migrate:${schema}`}))`;
    const before = await lastApplied(client, table);
    checkUpgradable(schema, before, migrations);
    await client.unsafe(`CREATE SCHEMA IF NOT EXISTS "${migrationsSchema}"; CREATE SCHEMA IF NOT EXISTS "${schema}"`).simple();
    const files = `"${migrationsSchema}"."${sqlFilesTable(schema)}"`;
    await client.unsafe(
      `CREATE TABLE IF NOT EXISTS ${files} (file text PRIMARY KEY, sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const applied = await client.begin((tx) => applySqlFiles(tx, schema, files, sqlFiles.beforeTables));

    // A table migration may drop what depends on a table (0005 made crier.events and
    // crier.deliveries anew): every file is then applied again, in the migrations' transaction, so
    // that no session ever sees the new tables without their triggers.
    let afterTables: string[] = [];
    const tables = await applyJournal<postgres.TransactionSql>(client, migrations, { schema: migrationsSchema, table }, async (tx) => {
      afterTables = await applySqlFiles(tx, schema, files, sqlFiles.afterTables, true);
    });
    if (tables.length === 0) afterTables = await client.begin((tx) => applySqlFiles(tx, schema, files, sqlFiles.afterTables));
    applied.push(...afterTables);

    if (tables.length > 0 || applied.length > 0) {
      // Whatever was (re)defined, the roles' grants are derived again from the schema as it is.
      await client.unsafe(inSchema('SELECT crier.refresh_grants()', schema));
    }
    return { schema, applied: [...tables, ...applied.map((file) => `sql/${file}`)] };
  } catch (error) {
    throw fromDatabaseError(error);
  } finally {
    await client.end({ timeout: 5 });
  }
}

/** Applies, in order, the files whose content changed (or all); returns their names. */
async function applySqlFiles(tx: postgres.TransactionSql, schema: string, table: string, files: readonly string[], all = false): Promise<string[]> {
  const recorded = new Map((await tx.unsafe(`SELECT file, sha256 FROM ${table}`)).map((r) => [r.file as string, r.sha256 as string]));
  const changed = files
    .map((file) => {
      const text = readFileSync(`${sqlFolder()}/${file}`, 'utf8');
      return { file, text, sha256: createHash('sha256').update(text).digest('hex') };
    })
    .filter((f) => all || recorded.get(f.file) !== f.sha256);
  for (const f of changed) {
    try {
      await tx.unsafe(inSchema(f.text, schema)).simple();
    } catch (error) {
      if (error instanceof Error) {
        const message = `db/sql/${f.file}: ${error.message}`;
        error.stack = error.stack?.replace(error.message, message);
        error.message = message;
      }
      throw error;
    }
    await tx.unsafe(
      `INSERT INTO ${table} (file, sha256) VALUES ($1, $2)
       ON CONFLICT (file) DO UPDATE SET sha256 = excluded.sha256, applied_at = now()`,
      [f.file, f.sha256],
    );
  }
  return changed.map((f) => f.file);
}

/**
 * Databases migrated by a development build of crier before 0.1.0 went through fourteen migrations,
 * now squashed into one baseline dated like the last of them: a database that has them all skips
 * the baseline and is upgraded in place by db/sql; one that stopped part-way cannot be.
 */
function checkUpgradable(schema: string, lastApplied: number, migrations: readonly JournalMigration[]): void {
  const baseline = migrations[0]!;
  if (lastApplied > 0 && lastApplied < baseline.when) {
    throw new CrierError(
      'CRIER_NOT_MIGRATED',
      `schema "${schema}" was migrated part-way by a development build of crier older than 0.1.0, whose migrations are now squashed into one; ` +
        `finish migrating it with that build first, or, if its data is disposable, drop it (DROP SCHEMA "${schema}" CASCADE) and migrate again`,
    );
  }
}

async function lastApplied(client: postgres.Sql, table: string): Promise<number> {
  const [exists] = await client`SELECT to_regclass(${`${migrationsSchema}.${table}`}) IS NOT NULL AS yes`;
  if (!exists?.yes) return 0;
  const [row] = await client.unsafe(`SELECT max(created_at)::float8 AS last FROM "${migrationsSchema}"."${table}"`);
  return Number(row?.last ?? 0);
}
