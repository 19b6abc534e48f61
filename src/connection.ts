// Where crier gets connections: a URL, or the caller's postgres.js client (3.4.x or 4.x). Dedicated
// connections (LISTEN, the migration lock, a worker's replacement clients) are opened with the
// caller's settings and crier's overrides.
import postgres from 'postgres';

export type Connection = string | postgres.Sql<any>;

/**
 * postgres.js options, including the callbacks that 3.x's public Options type leaves out (4.x
 * declares them, with an extra `pid` argument to onnotify that crier does not read).
 */
export type ClientOptions = postgres.Options<{}> & {
  onnotify?: (channel: string, payload: string) => void;
  onclose?: (connectionId: number) => void;
};

export function openClient(connection: Connection, overrides: ClientOptions = {}): postgres.Sql {
  const options = { onnotice: () => {}, ...overrides } as postgres.Options<{}>;
  if (typeof connection === 'string') return postgres(connection, options);
  // postgres.js accepts its own parsed options back (it does the same for sql.listen).
  return postgres({ ...(connection.options as unknown as postgres.Options<{}>), ...options });
}

/**
 * postgres.js 4.x: it has query_timeout/cancel_timeout and per-query cancellation (.signal()), and
 * its rewritten socket layer no longer poisons a pool slot when a connection dies with a write
 * pending. 3.x (parsed options without query_timeout) has neither.
 */
export function driverCancelsQueries(sql: postgres.Sql<any>): boolean {
  return 'query_timeout' in (sql.options as object);
}
