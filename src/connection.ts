// Where crier gets connections: a URL, or the caller's postgres.js client. Dedicated connections
// (LISTEN, the migration lock) are opened with the caller's settings and crier's overrides.
import postgres from 'postgres';

export type Connection = string | postgres.Sql<any>;

/** postgres.js options, including the callbacks its public Options type leaves out. */
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
