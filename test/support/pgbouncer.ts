// A real PgBouncer in transaction pool mode, owned by one test file: its own config directory, a
// free port, pointing at the test server (DATABASE_URL). PgBouncer refuses to run as root, so as
// root it runs as the `postgres` OS user. Where the binary is missing the tests skip visibly
// (pgbouncerSkip), unless CI requires them; then starting fails with the install command.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../examples/support/embedded-postgres.ts';
import { serverUrl } from './database.ts';
import { findExecutable, skipWithout } from './required.ts';

const install = 'install it with `apt-get install -y pgbouncer` (Debian/Ubuntu; .ci/run does this)';

/** Why the PgBouncer tests skip here (not installed, not required), or undefined: they run. */
export const pgbouncerSkip = skipWithout('pgbouncer', install);

export interface PgBouncer {
  port: number;
  /** A URL for `database` through this PgBouncer (same user as DATABASE_URL). */
  url(database: string): string;
  /** What PgBouncer has logged so far, for failure messages. */
  log(): string;
  stop(): Promise<void>;
}

function findBinary(): string {
  const found = findExecutable('pgbouncer');
  if (!found) throw new Error(`pgbouncer is not installed, so the connection-pooler tests cannot run: ${install}`);
  return found;
}


function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

/** The uid/gid of the `postgres` OS user, when running as root (PgBouncer will not run as root). */
function unprivilegedUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' });
  const uid = id('-u');
  const gid = id('-g');
  if (uid.status !== 0 || gid.status !== 0) {
    throw new Error('running as root, and PgBouncer refuses to: no `postgres` OS user to run it as');
  }
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

export async function startPgBouncer(): Promise<PgBouncer> {
  const binary = findBinary();
  const server = new URL(serverUrl);
  const user = decodeURIComponent(server.username || 'postgres');
  const password = decodeURIComponent(server.password);
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'crier-pgbouncer-'));
  const quote = (s: string) => `"${s.replace(/"/g, '""')}"`;
  const ini = join(dir, 'pgbouncer.ini');
  await writeFile(
    join(dir, 'userlist.txt'),
    `${quote(user)} ${quote(password)}\n`,
  );
  await writeFile(
    ini,
    [
      '[databases]',
      `* = host=${server.hostname.replace(/^\[|\]$/g, '')} port=${server.port || 5432}${password ? ` password=${password}` : ''}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      // The clients are the tests on this machine; the userlist only names who may connect.
      'auth_type = trust',
      `auth_file = ${join(dir, 'userlist.txt')}`,
      'pool_mode = transaction',
      'ignore_startup_parameters = extra_float_digits,options',
      '',
    ].join('\n'),
  );
  const owner = unprivilegedUser();
  if (owner) {
    for (const path of [dir, ini, join(dir, 'userlist.txt')]) await chown(path, owner.uid, owner.gid);
  }
  await chmod(dir, 0o700);

  let output = '';
  const child: ChildProcess = spawn(binary, [ini], { stdio: ['ignore', 'pipe', 'pipe'], ...owner });
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let running = true;
  void exited.then(() => (running = false));

  const deadline = Date.now() + 10_000;
  while (!(await canConnect(port))) {
    if (!running || Date.now() > deadline) {
      child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
      throw new Error(`pgbouncer did not start on port ${port}:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }

  return {
    port,
    url(database) {
      const url = new URL(serverUrl);
      url.hostname = '127.0.0.1';
      url.port = String(port);
      url.pathname = `/${database}`;
      return url.toString();
    },
    log: () => output,
    async stop() {
      // SIGTERM: immediate shutdown, without waiting for clients to leave.
      if (running) child.kill('SIGTERM');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
