// Drizzle inside a transactional handler: drizzle(ctx.tx) cannot work (Drizzle's postgres.js
// driver wants a client, and reconfigures its type parsers), so this wraps the handler's postgres.js
// transaction in a Drizzle transaction that shares `db`'s dialect, relational schema and parsers.
// Build `db` over the same postgres.js client the worker uses, so that parsers match.
import type postgres from 'postgres';
import type { TablesRelationalConfig } from 'drizzle-orm';
import type { PgDialect } from 'drizzle-orm/pg-core';
import { PostgresJsSession, PostgresJsTransaction, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';

interface DatabaseInternals {
  dialect: PgDialect;
  session: { options?: object };
  _: { schema?: TablesRelationalConfig; fullSchema: Record<string, unknown>; tableNamesMap: Record<string, string> };
}

/** `db` as a Drizzle transaction running on `tx` (a transactional handler's ctx.tx). */
export function drizzleTransaction<TFullSchema extends Record<string, unknown>, TSchema extends TablesRelationalConfig>(
  db: PostgresJsDatabase<TFullSchema>,
  tx: postgres.TransactionSql<any>,
): PostgresJsTransaction<TFullSchema, TSchema> {
  const internals = db as unknown as DatabaseInternals;
  const schema = internals._.schema
    ? { fullSchema: internals._.fullSchema, schema: internals._.schema as TSchema, tableNamesMap: internals._.tableNamesMap }
    : undefined;
  const session = new PostgresJsSession(tx as never, internals.dialect, schema, internals.session.options as never);
  return new PostgresJsTransaction(internals.dialect, session as never, schema);
}
