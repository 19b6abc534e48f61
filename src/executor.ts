// Runs crier's SQL on whatever the caller's transaction is: a postgres.js `sql` / `sql.begin`
// transaction, or a Drizzle database / `db.transaction` handle. This is how publishing joins the
// caller's business transaction instead of opening its own. drizzle-orm loads only when a Drizzle
// handle is first used: a process that never passes one does not pay for it (~8 MiB).
import type { SQL, SQLWrapper } from 'drizzle-orm';
import type postgres from 'postgres';
import { denseRows } from './dense-rows.ts';

/** Anything crier can publish through: postgres.js (`sql`, `tx`) or Drizzle (`db`, `tx`). */
export type Executor = postgres.Sql<any> | postgres.TransactionSql<any> | DrizzleExecutor;

export interface DrizzleExecutor {
  execute(query: SQLWrapper | string): PromiseLike<unknown>;
}

export type Row = Record<string, unknown>;

export async function runQuery(executor: Executor, text: string, params: unknown[]): Promise<Row[]> {
  if (typeof executor === 'function' && 'unsafe' in executor) {
    // `prepare: true` asks for a named prepared statement only where the client allows one:
    // postgres.js ANDs it with the client's own `prepare` option, so a client made with
    // `prepare: false` (for PgBouncer in transaction mode) gets unnamed statements. Never force it.
    return denseRows(await executor.unsafe(text, params as postgres.ParameterOrJSON<never>[], { prepare: true })) as Row[];
  }
  if (executor && typeof (executor as DrizzleExecutor).execute === 'function') {
    const result = await (executor as DrizzleExecutor).execute(await toDrizzle(text, params));
    // postgres-js returns the rows; node-postgres returns { rows }.
    return (Array.isArray(result) ? result : ((result as { rows?: Row[] }).rows ?? [])) as Row[];
  }
  throw new TypeError('crier: expected a postgres.js sql/transaction or a Drizzle database/transaction');
}

/** "$1"-style SQL text and its parameters as a Drizzle SQL object. */
async function toDrizzle(text: string, params: unknown[]): Promise<SQL> {
  const { sql: drizzleSql } = await import('drizzle-orm');
  const parts = text.split(/\$(\d+)/);
  const chunks: SQL[] = [];
  parts.forEach((part, i) => {
    chunks.push(i % 2 === 0 ? drizzleSql.raw(part) : drizzleSql`${params[Number(part) - 1]}`);
  });
  return drizzleSql.join(chunks);
}
