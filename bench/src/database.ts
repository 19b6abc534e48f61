// Where cells get their databases: a fresh one per cell on the shared server (DATABASE_URL, or the
// local one), or on an embedded Postgres the bench starts itself with default settings (autovacuum
// on, as users run it) for the growth scenario.
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { startEmbeddedPostgres } from '../../examples/support/embedded-postgres.ts';

export const sharedServerUrl = process.env.BENCH_DATABASE_URL ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

function withDatabase(serverUrl: string, name: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function admin<T>(serverUrl: string, run: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    return await run(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

export async function createDatabase(serverUrl: string, label: string): Promise<string> {
  const name = `crier_bench_${label.replace(/[^a-z0-9]/gi, '_').toLowerCase()}_${randomBytes(3).toString('hex')}`;
  await admin(serverUrl, (sql) => sql.unsafe(`CREATE DATABASE "${name}"`));
  return withDatabase(serverUrl, name);
}

export async function dropDatabase(url: string): Promise<void> {
  const name = new URL(url).pathname.slice(1);
  const server = withDatabase(url, 'postgres');
  await admin(server, (sql) => sql.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
}


export interface EmbeddedServer {
  url: string;
  version: string;
  stop(): Promise<void>;
}

/** Starts a throwaway Postgres with default settings (autovacuum on); stop() removes it. */
export async function startEmbedded(): Promise<EmbeddedServer> {
  const server = await startEmbeddedPostgres();
  const version = await admin(server.url, async (sql) => (await sql`SHOW server_version`)[0]!.server_version as string);
  return { url: server.url, version, stop: server.stop };
}
