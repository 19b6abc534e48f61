// Bounded recovery, measured from the harness: after a point in time (Postgres accepting
// connections again after a restart or crash, a silent network healed), how long each worker took
// to handle an event again. "Handled" is read from the handlers' own rows (handled, handled_tx:
// their `at` is the database's clock_timestamp(), on the same machine as the harness), so it means
// a handler ran to its end, not only that a claim went through.
import postgres from 'postgres';

export interface RecoveryPoint {
  /** Names the point in logs and failures ("restart 2", "heal"). */
  label: string;
  /** ms since the epoch. */
  at: number;
  /** Each worker must handle again within this. */
  boundMs: number;
  /** The workers that must: those running at that point (their ids). */
  workers: string[];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls with fresh connections until one answers; resolves with the time it did (ms since the
 * epoch). Called right after the server went down, it tells when Postgres accepts connections again.
 */
export async function firstAccepted(url: string, timeoutMs = 60_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const probe = postgres(url, { max: 1, connect_timeout: 2, onnotice: () => {}, fetch_types: false });
    try {
      await probe`SELECT 1`;
      return Date.now();
    } catch (error) {
      if (Date.now() > deadline) throw error;
    } finally {
      void probe.end({ timeout: 0 }).catch(() => {});
    }
    await sleep(20);
  }
}

/** Per worker of `point`: ms from the point to its first handling after it, or null (none). */
export async function recoveryTimes(sql: postgres.Sql, point: RecoveryPoint): Promise<Map<string, number | null>> {
  const rows = await sql.unsafe<{ worker: string; ms: number }[]>(
    `SELECT worker, (extract(epoch FROM min(at)) * 1000 - $1::float8)::float8 AS ms
     FROM (SELECT worker, at FROM handled UNION ALL SELECT worker, at FROM handled_tx) h
     WHERE at > to_timestamp($1::float8 / 1000) AND worker = ANY ($2::text::text[])
     GROUP BY worker`,
    [point.at, `{${point.workers.join(',')}}`],
  );
  const times = new Map<string, number | null>(point.workers.map((w) => [w, null]));
  for (const row of rows) times.set(row.worker, Number(row.ms));
  return times;
}

/** What broke the bound, one string per worker that did not handle again within it. */
export function recoveryProblems(point: RecoveryPoint, times: Map<string, number | null>): string[] {
  const out: string[] = [];
  for (const [worker, ms] of times) {
    if (ms === null) out.push(`worker ${worker} handled nothing after ${point.label} (bound ${point.boundMs / 1000} s)`);
    else if (ms > point.boundMs) out.push(`worker ${worker} handled again ${(ms / 1000).toFixed(1)} s after ${point.label} (bound ${point.boundMs / 1000} s)`);
  }
  return out;
}
