// crier/drizzle, Drizzle inside a transactional handler: drizzle(ctx.tx) cannot work (Drizzle's postgres.js
// driver wants a client, and reconfigures its type parsers), so this wraps the handler's postgres.js
// transaction in a Drizzle transaction that shares `db`'s dialect, relational schema and parsers.
// Build `db` over the same postgres.js client the worker uses, so that parsers match.
//
// It imports nothing from drizzle-orm at run time: the transaction is made by `db`'s own session
// class, so crier never loads Drizzle for the many workers that do not use it, and a `db` built with
// another copy of drizzle-orm than crier's gets its own classes back.
import type postgres from 'postgres';
import type { TablesRelationalConfig } from 'drizzle-orm';
import type { PostgresJsDatabase, PostgresJsTransaction } from 'drizzle-orm/postgres-js';

interface SessionInternals {
  /** PostgresJsSession.transaction: runs `use` on a new PostgresJsTransaction over client.begin's transaction. */
  transaction(use: (tx: unknown) => unknown): unknown;
}

/** `db` as a Drizzle transaction running on `tx` (a transactional handler's ctx.tx). */
export function drizzleTransaction<TFullSchema extends Record<string, unknown>, TSchema extends TablesRelationalConfig>(
  db: PostgresJsDatabase<TFullSchema>,
  tx: postgres.TransactionSql<any>,
): PostgresJsTransaction<TFullSchema, TSchema> {
  const session = (db as unknown as { session: SessionInternals }).session;
  // db's session, with a client whose begin() hands over `tx` instead of opening a transaction:
  // the session builds its transaction object synchronously, before its first await.
  const handOver = { begin: (use: (client: unknown) => unknown) => use(tx) };
  let transaction: PostgresJsTransaction<TFullSchema, TSchema> | undefined;
  const settled = session.transaction.call(Object.create(session, { client: { value: handOver } }), (made) => {
    transaction = made as PostgresJsTransaction<TFullSchema, TSchema>;
  });
  // Another driver's session would go on to use the hand-over client and fail later: not our outcome.
  Promise.resolve(settled).catch(() => {});
  if (!transaction) throw new TypeError('crier: drizzleTransaction expects a Drizzle database made by drizzle-orm/postgres-js');
  return transaction;
}
