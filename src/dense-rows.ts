// postgres.js 3.4.x (porsager/postgres issues #1119 and #1181, open): when a query fails while its
// rows stream in (a statement timeout, a cancel), the connection's row counter is not reset, and
// the next query on that connection resolves with that many empty slots before its rows (its
// `count` stays right). A worker under statement timeouts then claimed `undefined` deliveries and
// crashed (the fault suite's timeouts-and-hangs scenario). postgres.js 4.x is not affected (checked
// on 4.2.0: the next result has exactly its rows); there this returns the rows as they are.

/** The rows of a postgres.js result, without the leading empty slots that bug leaves. */
export function denseRows<T>(rows: T[] & { count?: number | null }): T[] {
  if (rows.count == null || rows.length === rows.count) return rows;
  return rows.slice(rows.length - rows.count);
}
