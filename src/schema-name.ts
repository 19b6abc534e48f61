// crier's tables live in one Postgres schema, "crier" unless configured otherwise (one schema per
// tenant). SQL is written against "crier." and qualified with the configured schema here.
import { CrierError, quote } from './errors.ts';

export const defaultSchema = 'crier';

export function checkSchemaName(schema: string = defaultSchema): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new CrierError(
      'CRIER_INVALID_OPTION',
      `schema ${quote(schema)} is not a valid schema name: use lower-case letters, digits and "_", starting with a letter or "_"`,
    );
  }
  return schema;
}

/** Rewrites the "crier" schema in SQL text (crier.x, "crier", and the 'crier' NOTIFY channel). */
export function inSchema(sqlText: string, schema: string): string {
  if (schema === defaultSchema) return sqlText;
  return sqlText
    .replace(/"crier"/g, `"${schema}"`)
    .replace(/\bcrier\./g, `${schema}.`)
    .replace(/'crier'/g, `'${schema}'`);
}
