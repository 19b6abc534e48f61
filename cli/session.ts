// What keeps a command from hanging on its database, whatever the driver does: a deadline of its
// own for connecting and starting up (a probe connection that must answer in time), the command's
// sessions tagged (application_name) and given the --statement-timeout, and a way to cancel what
// those sessions are running, on the server, from a fresh connection (pg_cancel_backend), when
// the operator presses Ctrl-C. It never waits for the driver to give up by itself.
import { randomBytes } from 'node:crypto';
import { openClient } from '../src/connection.ts';
import { CrierError, fromDatabaseError } from '../src/errors.ts';

/** How long a command may take to connect and start a session before it fails with exit 1. */
export const startupDeadlineMs = 7000;

/** application_name holds at most 63 bytes; ours is short and unique to this process. */
function sessionTag(): string {
  return `crier-cli-${process.pid}-${randomBytes(3).toString('hex')}`;
}

export interface Session {
  /** The URL the command connects with: tagged, and with the statement timeout when one is set. */
  url: string;
  /** Rejects when the server does not complete a session within the deadline (or refuses it). */
  started: Promise<void>;
  /** Cancels every query this command's sessions are running; settles within `withinMs`. */
  cancel(withinMs: number): Promise<void>;
  /** Stops the deadline (the command ended first). */
  dispose(): void;
}

export function openSession(baseUrl: string, options: { statementTimeoutMs?: number; deadlineMs?: number } = {}): Session {
  const url = new URL(baseUrl);
  const tag = sessionTag();
  const given = url.searchParams.get('application_name');
  url.searchParams.set('application_name', given ? `${given.slice(0, 40)} ${tag}` : tag);
  if (options.statementTimeoutMs !== undefined) url.searchParams.set('statement_timeout', String(options.statementTimeoutMs));
  const deadlineMs = options.deadlineMs ?? startupDeadlineMs;

  let timer: NodeJS.Timeout | undefined;
  const started = new Promise<void>((resolve, reject) => {
    timer = setTimeout(() => {
      reject(new CrierError(
        'CRIER_CONNECTION',
        `no answer from Postgres at ${url.host} within ${deadlineMs / 1000}s (connecting and starting a session); is it a Postgres server, reachable, and is the URL right?`,
      ));
    }, deadlineMs);
    // The probe runs beside the command: when it answers, the command's own connections do too.
    const probe = openClient(url.toString(), { max: 1, connect_timeout: Math.ceil(deadlineMs / 1000) + 1, fetch_types: false });
    probe`SELECT 1`.then(
      () => resolve(),
      (error: unknown) => reject(fromDatabaseError(error)),
    ).finally(() => {
      clearTimeout(timer);
      void probe.end({ timeout: 0 }).catch(() => {});
    });
  });
  started.catch(() => {}); // the command may end first and never look

  return {
    url: url.toString(),
    started,
    dispose: () => clearTimeout(timer),
    async cancel(withinMs) {
      // A fresh connection, untagged: the command's own may be busy or stuck.
      const admin = openClient(baseUrl, { max: 1, connect_timeout: Math.max(1, Math.ceil(withinMs / 1000)), fetch_types: false });
      let giveUp: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          admin`SELECT pg_cancel_backend(pid) FROM pg_stat_activity
                WHERE application_name LIKE ${`%${tag}`} AND pid <> pg_backend_pid() AND state <> 'idle'`,
          new Promise((resolve) => (giveUp = setTimeout(resolve, withinMs))),
        ]);
      } catch {
        // Cancelling is best effort: the process exits and its sessions end with it.
      } finally {
        clearTimeout(giveUp);
        void admin.end({ timeout: 0 }).catch(() => {});
      }
    },
  };
}
