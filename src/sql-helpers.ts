// Helpers for sending values to crier's SQL, shared by the worker's protocol and the admin API.

/**
 * Encodes a Postgres array literal, sent as text and cast in SQL. postgres.js's own array
 * parameters mangle some element types (booleans, NULLs), so crier never relies on them.
 */
export function pgArray(values: readonly (string | number | boolean | null)[]): string {
  const element = (v: string | number | boolean | null) =>
    v === null ? 'NULL' : typeof v === 'string' ? `"${v.replace(/[\\"]/g, '\\$&')}"` : typeof v === 'boolean' ? (v ? 't' : 'f') : String(v);
  return `{${values.map(element).join(',')}}`;
}
