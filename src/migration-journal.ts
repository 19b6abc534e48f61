// Applies drizzle-kit's generated migrations (a folder with meta/_journal.json and one <tag>.sql per
// entry, statements separated by `--> statement-breakpoint`) without loading drizzle-orm, so that
// migrate() works where drizzle-orm is not installed (it is an optional peer of crier). It keeps
// Drizzle's own bookkeeping (a table of id, sha256 of the file, the journal's `when`) and its rule
// (apply, in one transaction, every entry newer than the newest row), so a database migrated by
// Drizzle's migrator and one migrated by this agree, and each takes over from the other.
// The caller holds the lock that serialises migrators.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { PostgresJsExecutor } from './executor.ts';

export interface JournalMigration {
  tag: string;
  /** The journal's `when`: Drizzle records it as created_at. */
  when: number;
  /** sha256 of the file as written (before any rewriting), as Drizzle records it. */
  hash: string;
  statements: string[];
}

interface Journal {
  entries: { tag: string; when: number }[];
}

/** The folder's migrations in journal order, each statement passed through `rewrite` (e.g. another schema). */
export function readJournal(folder: string, rewrite: (statement: string) => string = (s) => s): JournalMigration[] {
  const journal = JSON.parse(readFileSync(`${folder}/meta/_journal.json`, 'utf8')) as Journal;
  return journal.entries.map(({ tag, when }) => {
    const text = readFileSync(`${folder}/${tag}.sql`, 'utf8');
    return {
      tag,
      when,
      hash: createHash('sha256').update(text).digest('hex'),
      statements: text.split('--> statement-breakpoint').map(rewrite),
    };
  });
}

/** A postgres.js client with one connection: `begin` runs the callback in a transaction. */
interface Client<Tx extends PostgresJsExecutor> extends PostgresJsExecutor {
  begin(callback: (tx: Tx) => Promise<unknown>): PromiseLike<unknown>;
}

/**
 * Applies the migrations newer than the newest one recorded in `"schema"."table"`; returns their tags.
 * `then`, when given, runs in the same transaction after them (only when some were pending).
 */
export async function applyJournal<Tx extends PostgresJsExecutor>(
  client: Client<Tx>,
  migrations: readonly JournalMigration[],
  bookkeeping: { schema: string; table: string },
  then?: (tx: Tx) => Promise<unknown>,
): Promise<string[]> {
  const table = `"${bookkeeping.schema}"."${bookkeeping.table}"`;
  await client.unsafe(`CREATE SCHEMA IF NOT EXISTS "${bookkeeping.schema}"`);
  await client.unsafe(`CREATE TABLE IF NOT EXISTS ${table} (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at bigint)`);
  const [last] = await client.unsafe(`SELECT created_at FROM ${table} ORDER BY created_at DESC LIMIT 1`);
  const newest = last ? Number(last.created_at) : -Infinity;
  const pending = migrations.filter((m) => m.when > newest);
  if (pending.length === 0) return [];
  await client.begin(async (tx) => {
    for (const migration of pending) {
      for (const statement of migration.statements) await tx.unsafe(statement);
      await tx.unsafe(`INSERT INTO ${table} (hash, created_at) VALUES ($1, $2)`, [migration.hash, migration.when]);
    }
    await then?.(tx);
  });
  return pending.map((m) => m.tag);
}
