// Publishing: one INSERT into crier.events on the caller's own transaction, whatever the number of
// events. The statement trigger crier.fan_out does the rest (deliveries, wake-ups) in the same
// transaction, so an event exists if and only if the business change committed.
import { CrierError, fromDatabaseError } from './errors.ts';
import { runQuery, type Executor } from './executor.ts';
import { inSchema } from './schema-name.ts';
import { assertTopic } from './topics.ts';

/** Headers travel with an event. correlationId groups a conversation; causationId names the event that caused this one. */
export interface EventHeaders {
  correlationId?: string;
  causationId?: string;
  [name: string]: unknown;
}

export interface PublishOptions {
  /** Events with the same key belong together (e.g. the order id). */
  key?: string | null;
  headers?: EventHeaders;
}

export interface EventInput<T extends string = string, P = unknown> extends PublishOptions {
  topic: T;
  payload: P;
}

export interface PublishedEvent {
  /** Position in the log (a bigint, as a string). */
  id: string;
  uuid: string;
  topic: string;
  createdAt: Date;
}

const insertEvents = `
INSERT INTO crier.events (topic, key, payload, headers)
SELECT x.topic, x.key, x.payload, x.headers
FROM jsonb_to_recordset($1::text::jsonb) AS x(topic text, key text, payload jsonb, headers jsonb)
RETURNING id::text AS id, uuid::text AS uuid, topic, created_at`;

export async function publishEvents(
  executor: Executor,
  schema: string,
  events: readonly EventInput[],
): Promise<PublishedEvent[]> {
  if (events.length === 0) return [];
  const batch = `[${events.map(encodeEvent).join(',')}]`;
  try {
    const rows = await runQuery(executor, inSchema(insertEvents, schema), [batch]);
    return rows.map((row) => ({
      id: row.id as string,
      uuid: row.uuid as string,
      topic: row.topic as string,
      createdAt: row.created_at instanceof Date ? row.created_at : new Date(row.created_at as string),
    }));
  } catch (error) {
    throw fromDatabaseError(error);
  }
}

/** Validates one event and encodes it as the JSON row jsonb_to_recordset reads. */
function encodeEvent(event: EventInput, index: number): string {
  const where = (what: string) => `event ${index} (${JSON.stringify(event?.topic)}): ${what}`;
  if (event === null || typeof event !== 'object') {
    throw new CrierError('CRIER_INVALID_PAYLOAD', `event ${index} is not an object with topic and payload`);
  }
  assertTopic(event.topic);
  const key = event.key ?? null;
  if (key !== null && (typeof key !== 'string' || key.length > 1024)) {
    throw new CrierError('CRIER_INVALID_KEY', where(`key must be a string of at most 1024 characters or null, got ${typeof key}`));
  }
  // Like payloads, keys reach Postgres inside the batch's JSON, where they could fail the whole statement.
  const keyProblem = key === null ? undefined : unstorable(JSON.stringify(key));
  if (keyProblem) throw new CrierError('CRIER_INVALID_KEY', where(`key contains ${keyProblem}`));
  const headers = event.headers ?? {};
  if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) {
    throw new CrierError('CRIER_INVALID_HEADERS', where('headers must be a plain object'));
  }
  for (const name of ['correlationId', 'causationId'] as const) {
    if (headers[name] !== undefined && typeof headers[name] !== 'string') {
      throw new CrierError('CRIER_INVALID_HEADERS', where(`headers.${name} must be a string`));
    }
  }
  const payload = toJson(event.payload, where, 'CRIER_INVALID_PAYLOAD', 'payload');
  const headersJson = toJson(headers, where, 'CRIER_INVALID_HEADERS', 'headers');
  return `{"topic":${JSON.stringify(event.topic)},"key":${JSON.stringify(key)},"payload":${payload},"headers":${headersJson}}`;
}

function toJson(
  value: unknown,
  where: (what: string) => string,
  code: 'CRIER_INVALID_PAYLOAD' | 'CRIER_INVALID_HEADERS',
  what: string,
): string {
  if (value === undefined || value === null) {
    throw new CrierError(code, where(`${what} is ${value}; publish an object (or {} for none)`));
  }
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (error) {
    throw new CrierError(code, where(`${what} is not JSON-serializable: ${(error as Error).message}`), { cause: error });
  }
  if (json === undefined) throw new CrierError(code, where(`${what} is not JSON-serializable (a ${typeof value})`));
  const problem = unstorable(json);
  if (problem) throw new CrierError(code, where(`${what} contains ${problem}`));
  return json;
}

// Postgres cannot store NUL nor half of a UTF-16 surrogate pair, which JSON.stringify writes as
// \u0000 and \udXXX escapes. Saying so here keeps Postgres from rejecting the whole statement,
// which would also abort the caller's transaction.
const escapedNul = /(^|[^\\])(\\\\)*\\u0000/;
const escapedLoneSurrogate = /(^|[^\\])(\\\\)*\\ud[89a-f][0-9a-f]{2}/;

function unstorable(json: string): string | undefined {
  if (escapedNul.test(json)) return 'the NUL character (\\u0000), which Postgres cannot store';
  if (escapedLoneSurrogate.test(json)) {
    return 'half of a UTF-16 surrogate pair (a string cut inside a character?), which Postgres cannot store';
  }
  return undefined;
}
