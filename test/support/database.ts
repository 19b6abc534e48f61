// Each test file gets its own database, migrated, and drops it at the end, so files run in
// parallel and never see each other's rows or depend on earlier runs. DATABASE_URL names the server
// (default: the local one); its database is only used to create and drop the test databases.
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { migrate } from '../../src/migrate.ts';
import { testHistory } from './history.ts';

export const serverUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export function databaseUrl(name: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

export interface TestDatabase {
  name: string;
  url: string;
  /** A client on the test database, for assertions and publishing. */
  sql: postgres.Sql;
  drop(): Promise<void>;
}

export async function createTestDatabase(label: string, options: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const name = `crier_test_${label.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const url = databaseUrl(name);
  if (options.migrate ?? true) await migrate({ connection: url });
  const sql = postgres(url, { max: 5, onnotice: () => {} });
  if ((options.migrate ?? true) && testHistory !== 'full') await setDefaultHistory(sql);
  return {
    name,
    url,
    sql,
    async drop() {
      await sql.end({ timeout: 1 });
      const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
      try {
        await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    },
  };
}

/**
 * Under `npm test -- --history failures` (support/history.ts): a subscription created in this
 * database without a history (SQL insert, crier.create_subscription, the CLI, the admin API) gets
 * the run's. Only this test database's column default changes; the schema and its migrations do not.
 * A schema other than crier (a tenant's) is set by the test that migrates it.
 */
export async function setDefaultHistory(sql: postgres.Sql, schema = 'crier'): Promise<void> {
  if (testHistory === 'full') return;
  await sql.unsafe(`ALTER TABLE "${schema}".subscriptions ALTER COLUMN history SET DEFAULT '${testHistory}'`);
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes. */
export async function eventually<T>(check: () => Promise<T> | T, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export async function deliveryStates(sql: postgres.Sql, subscription?: string) {
  const rows = await sql<{ state: string; n: number }[]>`
    SELECT state, count(*)::int AS n FROM crier.deliveries
    WHERE ${subscription === undefined ? sql`true` : sql`subscription = ${subscription}`}
    GROUP BY state`;
  return Object.fromEntries(rows.map((r) => [r.state, r.n])) as Record<string, number>;
}

/**
 * deliveryStates of a subscription that `routed` events were fanned out to, the same under either
 * history choice: done rows are not listed, `succeeded` counts them and, only for a subscription
 * on history 'failures' (support/history.ts), the deliveries gone (routed minus the rows left: a
 * first-attempt success leaves no row). Gone rows prove nothing by themselves: tests check them
 * against the handlers' own records.
 */
export async function deliveryOutcomes(sql: postgres.Sql, subscription: string, routed: number) {
  const { done = 0, ...others } = await deliveryStates(sql, subscription);
  const [stored] = await sql<{ history: string }[]>`SELECT history FROM crier.subscriptions WHERE name = ${subscription}`;
  const rows = Object.values(others).reduce((sum, n) => sum + n, done);
  const gone = stored?.history === 'failures' ? routed - rows : 0;
  return { ...others, succeeded: done + gone } as Record<string, number> & { succeeded: number };
}
