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
const inputColumns = `uuid uuid, topic text, key text, payload jsonb, headers jsonb, deliver_at timestamptz, delay_ms double precision, version integer`;

// One row back, however many events: their ids in the batch's order (one statement draws them from
// one sequence in the order it inserts the rows, which is the batch's) and the transaction's
// created_at; the client knows the rest (it drew the uuids). Absent fields take their defaults: the
// client sends only what differs from them (docs/benchmarks.md, "Where crier loses time", item 5).
const insertEvents = `
WITH inserted AS (
  INSERT INTO crier.events (uuid, topic, key, payload, headers, deliver_at, version)
  SELECT x.uuid, x.topic, x.key, x.payload, coalesce(x.headers, '{}'), ${delayedAt}, coalesce(x.version, 1)
  FROM jsonb_to_recordset($1::text::jsonb) AS x(${inputColumns})
  RETURNING id, created_at)
SELECT string_agg(id::text, ',' ORDER BY id) AS ids, min(created_at) AS created_at FROM inserted`;

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
  const encoded: Encoded[] = [];
  let idempotent = false;
  for (let i = 0; i < events.length; i++) {
    encoded.push(encodeEvent(events[i]!, i, instrumentation));
    idempotent ||= events[i]!.idempotencyKey != null;
  }
  let batch = '[';
  for (let i = 0; i < encoded.length; i++) batch += (i === 0 ? '' : ',') + encoded[i]!.json;
  batch += ']';
  let rows: Record<string, unknown>[];
  try {
    rows = await runQuery(executor, inSchema(idempotent ? insertIdempotentEvents : insertEvents, schema), [textParameter(executor, batch)]);
  } catch (error) {
    throw fromDatabaseError(error);
  }
  if (idempotent) return rows.map(toPublished);
  const ids = String(rows[0]?.ids ?? '').split(',');
  if (ids.length !== encoded.length) {
    // Only a BEFORE trigger of someone else's on crier.events that drops rows could do this.
    throw new Error(`crier: a batch of ${encoded.length} events inserted ${rows[0]?.ids == null ? 0 : ids.length} (does a trigger on crier.events skip rows?)`);
  }
  const createdAt = toDate(rows[0]!.created_at).getTime();
  return encoded.map((e, i) => ({ id: ids[i]!, uuid: e.uuid, topic: e.topic, version: e.version, createdAt: new Date(createdAt), duplicate: false }));
}

function toDate(value: unknown): Date {
  return value instanceof Date ? value : new Date(value as string);
}

function toPublished(row: Record<string, unknown>): PublishedEvent {
  return {
    id: row.id as string,
    uuid: row.uuid as string,
    topic: row.topic as string,
    version: row.version as number,
    createdAt: toDate(row.created_at),
    duplicate: row.duplicate === true,
  };
}

interface Encoded {
  /** The JSON object jsonb_to_recordset reads: only the fields that differ from their defaults. */
  json: string;
  uuid: string;
  topic: string;
  version: number;
}

/** "event 3 ("order.created"): what": where a problem is, for error messages. */
function at(index: number, event: EventInput, what: string): string {
  return `event ${index} (${quote(event?.topic)}): ${what}`;
}

/** Validates one event and encodes it as the JSON row jsonb_to_recordset reads. */
function encodeEvent(event: EventInput, index: number, instrumentation: Instrumentation | undefined): Encoded {
  if (event === null || typeof event !== 'object') {
    throw new CrierError('CRIER_INVALID_PAYLOAD', `event ${index} is not an object with topic and payload`);
  }
  assertTopic(event.topic);
  const key = event.key ?? null;
  if (key !== null && typeof key !== 'string') {
    throw new CrierError('CRIER_INVALID_KEY', at(index, event, `key must be a string of at most ${MAX_KEY_BYTES} bytes or null, got ${typeof key}`));
  }
  // Limits in bytes (src/limits.ts): past them Postgres would fail the statement on an index.
  const keyTooLong = key === null ? undefined : overLimit(key, MAX_KEY_BYTES);
  if (keyTooLong) throw new CrierError('CRIER_KEY_TOO_LONG', at(index, event, `the key ${keyTooLong}`));
  // Like payloads, keys reach Postgres inside the batch's JSON, where they could fail the whole statement.
  const keyJson = key === null ? undefined : JSON.stringify(key);
  const keyProblem = keyJson === undefined ? undefined : unstorable(keyJson);
  if (keyProblem) throw new CrierError('CRIER_INVALID_KEY', at(index, event, `key contains ${keyProblem}`));
  if (event.headers != null && (typeof event.headers !== 'object' || Array.isArray(event.headers))) {
    throw new CrierError('CRIER_INVALID_HEADERS', at(index, event, 'headers must be a plain object'));
  }
  const headers = withCausation(withPublishHeaders(event.headers ?? {}, event.topic, instrumentation), event, index);
  const idempotencyKey = event.idempotencyKey ?? null;
  if (idempotencyKey !== null && (typeof idempotencyKey !== 'string' || idempotencyKey === '' || unstorable(JSON.stringify(idempotencyKey)))) {
    throw new CrierError('CRIER_INVALID_IDEMPOTENCY_KEY', at(index, event, `idempotencyKey must be a non-empty string of at most ${MAX_IDEMPOTENCY_KEY_BYTES} bytes`));
  }
  const idempotencyKeyTooLong = idempotencyKey === null ? undefined : overLimit(idempotencyKey, MAX_IDEMPOTENCY_KEY_BYTES);
  if (idempotencyKeyTooLong) throw new CrierError('CRIER_IDEMPOTENCY_KEY_TOO_LONG', at(index, event, `the idempotency key ${idempotencyKeyTooLong}`));
  const delivery = deliveryTime(event, index);
  for (const name of ['correlationId', 'causationId'] as const) {
    if (headers[name] !== undefined && typeof headers[name] !== 'string') {
      throw new CrierError('CRIER_INVALID_HEADERS', at(index, event, `headers.${name} must be a string`));
    }
    const tooLong = headers[name] === undefined ? undefined : overLimit(headers[name] as string, MAX_HEADER_ID_BYTES);
    if (tooLong) throw new CrierError('CRIER_HEADER_TOO_LONG', at(index, event, `headers.${name} ${tooLong}`));
  }
  const version = event.version ?? 1;
  if (!Number.isInteger(version) || version < 1 || version > 2_147_483_647) {
    throw new CrierError('CRIER_INVALID_PAYLOAD', at(index, event, `version must be an integer >= 1, got ${JSON.stringify(version)}`));
  }
  const payload = toJson(event.payload, event, index, 'CRIER_INVALID_PAYLOAD', 'payload');
  const headersJson = toJson(headers, event, index, 'CRIER_INVALID_HEADERS', 'headers');
  const uuid = uuidV7();
  // Only what differs from the defaults the statements apply (no key, no headers, at once, version 1).
  let json = `{"uuid":"${uuid}","topic":${JSON.stringify(event.topic)},"payload":${payload}`;
  if (keyJson !== undefined) json += `,"key":${keyJson}`;
  if (headersJson !== '{}') json += `,"headers":${headersJson}`;
  if (idempotencyKey !== null) json += `,"idempotency_key":${JSON.stringify(idempotencyKey)}`;
  if (delivery !== undefined) json += typeof delivery === 'string' ? `,"deliver_at":"${delivery}"` : `,"delay_ms":${JSON.stringify(delivery)}`;
  if (version !== 1) json += `,"version":${version}`;
  return { json: `${json}}`, uuid, topic: event.topic, version };
}

/** The causing event's correlation and id, unless the caller set these headers explicitly. */
function withCausation(headers: EventHeaders, event: EventInput, index: number): EventHeaders {
  const causedBy = event.causedBy;
  if (causedBy == null) return headers;
  if (typeof causedBy.uuid !== 'string' || typeof causedBy.correlationId !== 'string') {
    throw new CrierError('CRIER_INVALID_HEADERS', at(index, event, 'causedBy must be the event being handled (with uuid and correlationId)'));
  }
  return { correlationId: causedBy.correlationId, causationId: causedBy.uuid, ...headers };
}

/** When the event's deliveries become claimable: an ISO time (deliverAt), milliseconds from now (delay), or at once (undefined). */
function deliveryTime(event: EventInput, index: number): string | number | undefined {
  if (event.deliverAt != null && event.delay != null) {
    throw new CrierError('CRIER_INVALID_OPTION', at(index, event, 'give deliverAt or delay, not both'));
  }
  if (event.deliverAt != null) {
    if (!(event.deliverAt instanceof Date) || Number.isNaN(event.deliverAt.getTime())) {
      throw new CrierError('CRIER_INVALID_OPTION', at(index, event, 'deliverAt must be a valid Date'));
    }
    return event.deliverAt.toISOString();
  }
  if (event.delay != null) return toMilliseconds(event.delay, at(index, event, 'delay'));
  return undefined;
}

function toJson(
  value: unknown,
  event: EventInput,
  index: number,
  code: 'CRIER_INVALID_PAYLOAD' | 'CRIER_INVALID_HEADERS',
  what: string,
): string {
  if (value === undefined || value === null) {
    throw new CrierError(code, at(index, event, `${what} is ${value}; publish an object (or {} for none)`));
  }
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (error) {
    throw new CrierError(code, at(index, event, `${what} is not JSON-serializable: ${(error as Error).message}`), { cause: error });
  }
  if (json === undefined) throw new CrierError(code, at(index, event, `${what} is not JSON-serializable (a ${typeof value})`));
  const problem = unstorable(json);
  if (problem) throw new CrierError(code, at(index, event, `${what} contains ${problem}`));
  return json;
}

// Postgres cannot store NUL nor half of a UTF-16 surrogate pair, which JSON.stringify writes as
// \u0000 and \udXXX escapes. Saying so here keeps Postgres from rejecting the whole statement,
// which would also abort the caller's transaction.
const escapedNul = /(^|[^\\])(\\\\)*\\u0000/;
const escapedLoneSurrogate = /(^|[^\\])(\\\\)*\\ud[89a-f][0-9a-f]{2}/;

function unstorable(json: string): string | undefined {
  // JSON.stringify writes both only as \u escapes: most JSON has none, and is not scanned twice.
  if (!json.includes('\\u')) return undefined;
  if (escapedNul.test(json)) return 'the NUL character (\\u0000), which Postgres cannot store';
  if (escapedLoneSurrogate.test(json)) {
    return 'half of a UTF-16 surrogate pair (a string cut inside a character?), which Postgres cannot store';
  }
  return undefined;
}
