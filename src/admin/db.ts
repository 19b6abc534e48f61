// How the admin modules talk to Postgres: SQL written against "crier." and rewritten for the
// configured schema, errors turned into CrierErrors (with a "did you mean" for subscription names),
// and large results read through a cursor so no listing is ever held in memory whole.
import type postgres from 'postgres';
import { CrierError, fromDatabaseError, quote } from '../errors.ts';
import { inSchema } from '../schema-name.ts';
import { closest } from '../suggest.ts';

export interface AdminDb {
  readonly sql: postgres.Sql<any>;
  readonly schema: string;
}

export type Row = Record<string, any>;

export async function query(db: AdminDb, text: string, params: unknown[] = []): Promise<Row[]> {
  try {
    return await db.sql.unsafe(inSchema(text, db.schema), params as postgres.ParameterOrJSON<never>[]);
  } catch (error) {
    throw await explain(db, error);
  }
}

/** Yields rows one at a time, fetching `batch` rows per round trip through a server-side cursor. */
export async function* stream(db: AdminDb, text: string, params: unknown[] = [], batch = 200): AsyncGenerator<Row> {
  try {
    const cursor = db.sql.unsafe(inSchema(text, db.schema), params as postgres.ParameterOrJSON<never>[]).cursor(batch);
    for await (const rows of cursor) yield* rows;
  } catch (error) {
    throw await explain(db, error);
  }
}

/** Throws CRIER_UNKNOWN_SUBSCRIPTION (with a suggestion) unless the subscription exists. */
export async function assertSubscription(db: AdminDb, name: string): Promise<void> {
  const [row] = await query(db, 'SELECT 1 FROM crier.subscriptions WHERE name = $1', [name]);
  if (!row) throw await unknownSubscription(db, name);
}

async function explain(db: AdminDb, error: unknown): Promise<unknown> {
  const mapped = fromDatabaseError(error);
  if (mapped instanceof CrierError && mapped.code === 'CRIER_UNKNOWN_SUBSCRIPTION') {
    const name = /no subscription '((?:[^']|'')*)'/.exec(mapped.detail)?.[1]?.replace(/''/g, "'");
    if (name !== undefined) return unknownSubscription(db, name, mapped.cause);
  }
  return mapped;
}

async function unknownSubscription(db: AdminDb, name: string, cause?: unknown): Promise<CrierError> {
  let hint = '';
  try {
    const rows = await db.sql.unsafe(inSchema('SELECT name FROM crier.subscriptions ORDER BY name LIMIT 1000', db.schema));
    const known = rows.map((r) => r.name as string);
    const close = closest(name, known);
    if (close) hint = `; did you mean "${close}"?`;
    else if (known.length === 0) hint = '; there are no subscriptions yet (create one with "crier subscriptions create", or a worker creates it when it starts)';
    else hint = `; known subscriptions: ${known.slice(0, 10).join(', ')}${known.length > 10 ? ', ...' : ''}`;
  } catch {
    // The suggestion is a courtesy: the error stands without it.
  }
  return new CrierError('CRIER_UNKNOWN_SUBSCRIPTION', `no subscription ${quote(name)}${hint}`, { cause });
}

export const toNumber = (value: unknown): number => (value == null ? 0 : Number(value));
export const toText = (value: unknown): string | null => (value == null ? null : String(value));
