// Runs crier's SQL on whatever the caller's transaction is, so that publishing joins the caller's
// business transaction instead of opening its own. Three shapes, recognised at run time:
//   - postgres.js 3.x or 4.x (`sql`, `sql.begin`'s `tx`): it has `unsafe(text, params)`;
//   - Drizzle (`db`, `db.transaction`'s `tx`): it has `execute(SQL)`; drizzle-orm loads only when
//     such a handle is first used, so a process that never passes one does not pay for it;
//   - anything with `query(text, params)` answering rows or `{ rows }`: node-postgres clients and
//     pools, TypeORM's QueryRunner and EntityManager, and the adapters in src/integrations/ (Kysely,
//     Knex, Prisma).
// The types are structural on purpose: no type of postgres.js or drizzle-orm appears here, so any
// version of them type-checks and a consumer's declarations never pull in a library it lacks.
import { denseRows } from './dense-rows.ts';

/** A postgres.js client or transaction, 3.x or 4.x. */
export interface PostgresJsExecutor {
  unsafe(query: string, parameters?: any[], options?: { prepare?: boolean }): PromiseLike<any>;
  /** A parameter of a given type oid (both majors have it). */
  typed?(value: unknown, oid: number): unknown;
}

const textOid = 25;

/**
 * `value` as a parameter declared `text`, for statements that cast it themselves ($1::text::...).
 * Left untyped, postgres.js 4 first asks the server for the parameter's type in a round trip of its
 * own (Parse, Describe, Flush, no Sync), which PgBouncer 1.18 in transaction mode never answers
 * outside a transaction: the query hung for ever.
 */
export function textParameter(executor: Executor, value: string): unknown {
  const postgresJs = executor as PostgresJsExecutor;
  return typeof executor === 'function' && typeof postgresJs.typed === 'function' ? postgresJs.typed(value, textOid) : value;
}

/** A Drizzle database or transaction (the SQL object crier hands it is made with the caller's drizzle-orm). */
export interface DrizzleExecutor {
  execute(query: any): PromiseLike<unknown>;
}

/**
 * Anything that runs `$1`-style SQL with positional parameters and answers the rows (an array) or
 * `{ rows }`: a node-postgres `Client`/`PoolClient`/`Pool`, a TypeORM `QueryRunner` or `EntityManager`,
 * or `crier/kysely`, `crier/knex`, `crier/prisma`'s adapters.
 */
export interface QueryExecutor {
  query(text: string, parameters?: any[]): PromiseLike<unknown>;
}

/** Anything crier can publish through: postgres.js, Drizzle, or a `query(text, params)` executor. */
export type Executor = PostgresJsExecutor | DrizzleExecutor | QueryExecutor;

export type Row = Record<string, unknown>;

export async function runQuery(executor: Executor, text: string, params: unknown[]): Promise<Row[]> {
  if (typeof executor === 'function' && 'unsafe' in executor) {
    // `prepare: true` asks for a named prepared statement only where the client allows one:
    // postgres.js ANDs it with the client's own `prepare` option, so a client made with
    // `prepare: false` (for PgBouncer in transaction mode) gets unnamed statements. Never force it.
    return denseRows(await (executor as PostgresJsExecutor).unsafe(text, params, { prepare: true })) as Row[];
  }
  if (executor && typeof (executor as DrizzleExecutor).execute === 'function') {
    return rowsOf(await (executor as DrizzleExecutor).execute(await toDrizzle(text, params)));
  }
  if (executor && typeof (executor as QueryExecutor).query === 'function') {
    return rowsOf(await (executor as QueryExecutor).query(text, params));
  }
  throw new TypeError(
    'crier: expected a postgres.js sql/transaction, a Drizzle database/transaction, or an object with query(text, params) ' +
      '(a node-postgres client, a TypeORM QueryRunner/EntityManager; for Kysely, Knex and Prisma wrap the transaction ' +
      "with crier/kysely, crier/knex or crier/prisma)",
  );
}

/** The rows of a result: postgres-js drivers answer them directly, node-postgres ones as { rows }. */
function rowsOf(result: unknown): Row[] {
  return (Array.isArray(result) ? result : ((result as { rows?: Row[] } | undefined)?.rows ?? [])) as Row[];
}

interface DrizzleSql {
  raw(text: string): unknown;
  join(chunks: unknown[]): unknown;
  (strings: TemplateStringsArray, ...values: unknown[]): unknown;
}

/** "$1"-style SQL text and its parameters as a Drizzle SQL object. */
async function toDrizzle(text: string, params: unknown[]): Promise<unknown> {
  const { sql: drizzleSql } = (await import('drizzle-orm')) as unknown as { sql: DrizzleSql };
  const parts = text.split(/\$(\d+)/);
  const chunks = parts.map((part, i) => (i % 2 === 0 ? drizzleSql.raw(part) : drizzleSql`${params[Number(part) - 1]}`));
  return drizzleSql.join(chunks);
}
