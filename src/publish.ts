// Publishing: one INSERT into crier.events on the caller's own transaction, whatever the number of
// events. The statement trigger crier.fan_out does the rest (deliveries, wake-ups) in the same
// transaction, so an event exists if and only if the business change committed.
import { toMilliseconds, type Duration } from './duration.ts';
import { CrierError, fromDatabaseError, quote } from './errors.ts';
import { runQuery, textParameter, type Executor } from './executor.ts';
import { withPublishHeaders, type Instrumentation } from './instrumentation.ts';
import { MAX_HEADER_ID_BYTES, MAX_IDEMPOTENCY_KEY_BYTES, MAX_KEY_BYTES, overLimit } from './limits.ts';
import { inSchema } from './schema-name.ts';
import { assertTopic } from './topics.ts';
import { uuidV7 } from './uuid-v7.ts';

/** Headers travel with an event. correlationId groups a conversation; causationId names the event that caused this one. */
export interface EventHeaders {
  correlationId?: string;
  causationId?: string;
  [name: string]: unknown;
}

export interface PublishOptions {
  /** Events with the same key belong together (e.g. the order id); ordered subscriptions handle them one at a time. */
  key?: string | null;
  headers?: EventHeaders;
  /**
   * Makes a retried producer call a no-op: a second publish with the same key on the same topic
   * returns the first event (duplicate: true) until the key is pruned (crier.prune_idempotency_keys).
   */
  idempotencyKey?: string;
  /** Delayed delivery: not claimable before this time. */
  deliverAt?: Date;
  /** Delayed delivery: not claimable before this long after the publish (database clock). */
  delay?: Duration;
  /**
   * The event being handled when this one is published: sets the correlationId (same conversation)
   * and causationId (that event's uuid) headers. ctx.publish in a handler does it for you.
   */
  causedBy?: { uuid: string; correlationId: string };
  /** The payload's schema version (default 1); the catalog (docs/catalog.md) sets it for you. */
  version?: number;
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
  version: number;
  createdAt: Date;
  /** True when an idempotency key matched an earlier publish: this is that event, nothing was inserted. */
  duplicate: boolean;
}

const delayedAt = `coalesce(x.deliver_at, statement_timestamp() + x.delay_ms * interval '1 millisecond')`;
const inputColumns = `uuid uuid, topic text, key text, payload jsonb, headers jsonb, idempotency_key text, deliver_at timestamptz, delay_ms double precision, version integer`;

const insertEvents = `
INSERT INTO crier.events (uuid, topic, key, payload, headers, deliver_at, version)
SELECT x.uuid, x.topic, x.key, x.payload, x.headers, ${delayedAt}, x.version
FROM jsonb_to_recordset($1::text::jsonb) AS x(${inputColumns})
RETURNING id::text AS id, uuid::text AS uuid, topic, version, created_at`;

// With idempotency keys: crier.publish_idempotent (db/sql/publish.sql) claims the keys and inserts
// the events whose key it claimed, as its owner: publishers have no rights on crier.idempotency_keys.
// A duplicate comes back as the first event of its key (duplicate = true).
const insertIdempotentEvents = `
SELECT id::text AS id, uuid::text AS uuid, topic, version, created_at, duplicate
FROM crier.publish_idempotent($1::text::jsonb)`;

export async function publishEvents(
  executor: Executor,
  schema: string,
  events: readonly EventInput[],
  /** Adds headers to each event (trace context): see src/instrumentation.ts. */
  instrumentation?: Instrumentation,
): Promise<PublishedEvent[]> {
  if (events.length === 0) return [];
  const encoded: string[] = [];
  for (let i = 0; i < events.length; i++) encoded.push(encodeEvent(events[i]!, i, instrumentation));
  const batch = `[${encoded.join(',')}]`;
  const idempotent = events.some((e) => e.idempotencyKey != null);
  try {
    const rows = await runQuery(executor, inSchema(idempotent ? insertIdempotentEvents : insertEvents, schema), [
      textParameter(executor, batch),
    ]);
    return rows.map(toPublished);
  } catch (error) {
    throw fromDatabaseError(error);
  }
}

function toPublished(row: Record<string, unknown>): PublishedEvent {
  return {
    id: row.id as string,
    uuid: row.uuid as string,
    topic: row.topic as string,
    version: row.version as number,
    createdAt: row.created_at instanceof Date ? row.created_at : new Date(row.created_at as string),
    duplicate: row.duplicate === true,
  };
}

/** Validates one event and encodes it as the JSON row jsonb_to_recordset reads. */
function encodeEvent(event: EventInput, index: number, instrumentation: Instrumentation | undefined): string {
  const where = (what: string) => `event ${index} (${quote(event?.topic)}): ${what}`;
  if (event === null || typeof event !== 'object') {
    throw new CrierError('CRIER_INVALID_PAYLOAD', `event ${index} is not an object with topic and payload`);
  }
  assertTopic(event.topic);
  const key = event.key ?? null;
  if (key !== null && typeof key !== 'string') {
    throw new CrierError('CRIER_INVALID_KEY', where(`key must be a string of at most ${MAX_KEY_BYTES} bytes or null, got ${typeof key}`));
  }
  // Limits in bytes (src/limits.ts): past them Postgres would fail the statement on an index.
  const keyTooLong = key === null ? undefined : overLimit(key, MAX_KEY_BYTES);
  if (keyTooLong) throw new CrierError('CRIER_KEY_TOO_LONG', where(`the key ${keyTooLong}`));
  // Like payloads, keys reach Postgres inside the batch's JSON, where they could fail the whole statement.
  const keyProblem = key === null ? undefined : unstorable(JSON.stringify(key));
  if (keyProblem) throw new CrierError('CRIER_INVALID_KEY', where(`key contains ${keyProblem}`));
  if (event.headers != null && (typeof event.headers !== 'object' || Array.isArray(event.headers))) {
    throw new CrierError('CRIER_INVALID_HEADERS', where('headers must be a plain object'));
  }
  const headers = withCausation(withPublishHeaders(event.headers ?? {}, event.topic, instrumentation), event.causedBy, where);
  const idempotencyKey = event.idempotencyKey ?? null;
  if (idempotencyKey !== null && (typeof idempotencyKey !== 'string' || idempotencyKey === '' || unstorable(JSON.stringify(idempotencyKey)))) {
    throw new CrierError('CRIER_INVALID_IDEMPOTENCY_KEY', where(`idempotencyKey must be a non-empty string of at most ${MAX_IDEMPOTENCY_KEY_BYTES} bytes`));
  }
  const idempotencyKeyTooLong = idempotencyKey === null ? undefined : overLimit(idempotencyKey, MAX_IDEMPOTENCY_KEY_BYTES);
  if (idempotencyKeyTooLong) throw new CrierError('CRIER_IDEMPOTENCY_KEY_TOO_LONG', where(`the idempotency key ${idempotencyKeyTooLong}`));
  const { deliverAt, delayMs } = deliveryTime(event, where);
  for (const name of ['correlationId', 'causationId'] as const) {
    if (headers[name] !== undefined && typeof headers[name] !== 'string') {
      throw new CrierError('CRIER_INVALID_HEADERS', where(`headers.${name} must be a string`));
    }
    const tooLong = headers[name] === undefined ? undefined : overLimit(headers[name] as string, MAX_HEADER_ID_BYTES);
    if (tooLong) throw new CrierError('CRIER_HEADER_TOO_LONG', where(`headers.${name} ${tooLong}`));
  }
  const version = event.version ?? 1;
  if (!Number.isInteger(version) || version < 1 || version > 2_147_483_647) {
    throw new CrierError('CRIER_INVALID_PAYLOAD', where(`version must be an integer >= 1, got ${JSON.stringify(version)}`));
  }
  const payload = toJson(event.payload, where, 'CRIER_INVALID_PAYLOAD', 'payload');
  const headersJson = toJson(headers, where, 'CRIER_INVALID_HEADERS', 'headers');
  return `{"uuid":"${uuidV7()}","topic":${JSON.stringify(event.topic)},"key":${JSON.stringify(key)},"payload":${payload},"headers":${headersJson},"idempotency_key":${JSON.stringify(idempotencyKey)},"deliver_at":${JSON.stringify(deliverAt)},"delay_ms":${JSON.stringify(delayMs)},"version":${version}}`;
}

/** The causing event's correlation and id, unless the caller set these headers explicitly. */
function withCausation(headers: EventHeaders, causedBy: PublishOptions['causedBy'], where: (what: string) => string): EventHeaders {
  if (causedBy == null) return headers;
  if (typeof causedBy.uuid !== 'string' || typeof causedBy.correlationId !== 'string') {
    throw new CrierError('CRIER_INVALID_HEADERS', where('causedBy must be the event being handled (with uuid and correlationId)'));
  }
  return { correlationId: causedBy.correlationId, causationId: causedBy.uuid, ...headers };
}

function deliveryTime(event: EventInput, where: (what: string) => string): { deliverAt: string | null; delayMs: number | null } {
  if (event.deliverAt != null && event.delay != null) {
    throw new CrierError('CRIER_INVALID_OPTION', where('give deliverAt or delay, not both'));
  }
  if (event.deliverAt != null) {
    if (!(event.deliverAt instanceof Date) || Number.isNaN(event.deliverAt.getTime())) {
      throw new CrierError('CRIER_INVALID_OPTION', where('deliverAt must be a valid Date'));
    }
    return { deliverAt: event.deliverAt.toISOString(), delayMs: null };
  }
  if (event.delay != null) return { deliverAt: null, delayMs: toMilliseconds(event.delay, where('delay')) };
  return { deliverAt: null, delayMs: null };
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
