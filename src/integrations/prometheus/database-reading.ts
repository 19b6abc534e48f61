// What a metrics exporter reads from the database, in ONE query per reading: every subscription's
// gauges (crier.subscription_gauges) and the events published since the previous reading, by topic
// (crier.published_events), for the crier_published_total counter. Knows nothing of prom-client.
//
// Each reading has a deadline: statement_timeout on the server (a lock or a slow plan) and a
// client-side timer that cancels the query (a connection that stopped answering). Its own client,
// one connection, with JIT off: the plan is a handful of index scans, and JIT's compile time
// (seconds, when the planner's estimates on a big table pass jit_above_cost) would be the scrape.
import type postgres from 'postgres';
import { openClient, type Connection } from '../../connection.ts';
import { toMilliseconds, type Duration } from '../../duration.ts';
import { CrierError, fromDatabaseError } from '../../errors.ts';
import { checkSchemaName, defaultSchema, inSchema } from '../../schema-name.ts';

export interface DatabaseReadingOptions {
  /** crier's schema (default "crier"; `crier.schema` of a createCrier({ schema })). */
  schema?: string;
  /** A reading not done by then fails (default 5s: under Prometheus' default 10 s scrape timeout). */
  timeout?: Duration;
  /**
   * Events are counted as published once their transaction's start is this far back (default 10s):
   * a transaction commits after it starts, and counting up to now would miss the ones committing
   * late. A publishing transaction still open after this time is never counted.
   */
  settle?: Duration;
}

export interface SubscriptionGauges {
  subscription: string;
  paused: boolean;
  backlog: number;
  oldestDueAgeSeconds: number;
  retrying: number;
  delayed: number;
  running: number;
  stuck: number;
  oldestStuckSeconds: number;
  dead: number;
  waiting: number;
  blockedKeys: number;
}

export interface Reading {
  subscriptions: SubscriptionGauges[];
  /** Events published since the previous reading, by topic (empty on the first reading: the baseline). */
  published: { topic: string; count: number }[];
  durationSeconds: number;
}

export interface DatabaseReader {
  read(): Promise<Reading>;
  close(): Promise<void>;
}

const readingSql = `
SELECT
  (SELECT coalesce(json_agg(g ORDER BY g.subscription), '[]') FROM crier.subscription_gauges g) AS subscriptions,
  (SELECT coalesce(json_agg(p), '[]') FROM (
     SELECT e.topic, count(*) AS count FROM crier.published_events e
     WHERE e.published_at >= $1::timestamptz AND e.published_at < now() - $2::interval
     GROUP BY e.topic) p) AS published,
  (now() - $2::interval)::text AS published_until`;

export function databaseReader(connection: Connection, options: DatabaseReadingOptions = {}): DatabaseReader {
  const schema = checkSchemaName(options.schema ?? defaultSchema);
  const timeoutMs = toMilliseconds(options.timeout ?? '5s', 'timeout');
  const settleMs = toMilliseconds(options.settle ?? '10s', 'settle');
  if (timeoutMs < 1) throw new CrierError('CRIER_INVALID_OPTION', 'timeout: must be at least 1ms');
  const base = typeof connection === 'string' ? undefined : (connection.options as { connection?: Record<string, unknown> }).connection;
  const sql: postgres.Sql = openClient(connection, {
    max: 1,
    idle_timeout: 60,
    connect_timeout: Math.max(1, Math.ceil(timeoutMs / 1000)),
    connection: { ...base, application_name: 'crier metrics', statement_timeout: timeoutMs, jit: 'off' } as never,
  });
  const text = inSchema(readingSql, schema);
  /** Up to where events were counted (the database's clock, full precision); null before the first reading. */
  let countedUntil: string | null = null;

  return {
    async read() {
      const started = performance.now();
      const query = sql.unsafe(text, [countedUntil, `${settleMs} milliseconds`]);
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          query.cancel();
          reject(new CrierError('CRIER_CONNECTION', `metrics: the database did not answer within ${timeoutMs} ms`));
        }, timeoutMs);
      });
      try {
        const [row] = await Promise.race([query, deadline]).catch((error: unknown) => {
          throw fromDatabaseError(error);
        });
        countedUntil = row!.published_until;
        return {
          subscriptions: (row!.subscriptions as Record<string, unknown>[]).map(gauges),
          published: (row!.published as { topic: string; count: number }[]).map((p) => ({ topic: p.topic, count: Number(p.count) })),
          durationSeconds: (performance.now() - started) / 1000,
        };
      } finally {
        clearTimeout(timer);
      }
    },
    close: () => sql.end({ timeout: 1 }),
  };
}

function gauges(row: Record<string, unknown>): SubscriptionGauges {
  return {
    subscription: row.subscription as string,
    paused: row.paused as boolean,
    backlog: Number(row.backlog),
    oldestDueAgeSeconds: Number(row.oldest_due_age_seconds),
    retrying: Number(row.retrying),
    delayed: Number(row.delayed),
    running: Number(row.running),
    stuck: Number(row.stuck),
    oldestStuckSeconds: Number(row.oldest_stuck_seconds),
    dead: Number(row.dead),
    waiting: Number(row.waiting),
    blockedKeys: Number(row.blocked_keys),
  };
}
