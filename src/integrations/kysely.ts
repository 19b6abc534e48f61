// crier/kysely: publish inside a Kysely transaction. Kysely runs compiled queries, so crier's SQL
// goes through `executeQuery(CompiledQuery.raw(...))`, on the caller's own connection. Without
// the caller's plugins: a CamelCasePlugin would rename the columns crier reads back.
// kysely loads from the caller's install when the executor is first used.
import type { QueryExecutor } from '../executor.ts';

/** The part of a Kysely instance or transaction crier uses. */
export interface KyselyLike {
  withoutPlugins(): { executeQuery(query: any): PromiseLike<{ rows: unknown[] }> };
}

/** `trx` (from `db.transaction().execute(async (trx) => ...)`) as an executor for crier.publish. */
export function kyselyExecutor(trx: KyselyLike): QueryExecutor {
  return {
    async query(text, parameters = []) {
      const { CompiledQuery } = await import('kysely');
      return trx.withoutPlugins().executeQuery(CompiledQuery.raw(text, parameters));
    },
  };
}
