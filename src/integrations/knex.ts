// crier/knex: publish inside a Knex transaction. Knex's raw SQL takes `?` placeholders, so crier's
// `$1` placeholders are rewritten to them (a parameter used twice is bound twice) and the question
// marks already in the SQL (jsonb operators) are escaped. Needs Knex's `pg` client.
import type { QueryExecutor } from '../executor.ts';

/** The part of a Knex instance or transaction crier uses. */
export interface KnexLike {
  raw(sql: string, bindings: readonly unknown[]): PromiseLike<unknown>;
}

/** `trx` (from `knex.transaction(async (trx) => ...)`) as an executor for crier.publish. */
export function knexExecutor(trx: KnexLike): QueryExecutor {
  return {
    query(text, parameters = []) {
      const bindings: unknown[] = [];
      const positional = text.replace(/\?/g, '\\?').replace(/\$(\d+)/g, (_, n: string) => {
        bindings.push(parameters[Number(n) - 1]);
        return '?';
      });
      return trx.raw(positional, bindings);
    },
  };
}
