// Publishing: one INSERT into crier.events on the caller's own transaction, whatever the number of
// events. The statement trigger crier.fan_out does the rest (deliveries, wake-ups) in the same
// transaction, so an event exists if and only if the business change committed.
import { toMilliseconds, type Duration } from './duration.ts';
import { CrierError, fromDatabaseError, quote } from './errors.ts';
import { runQuery, type Executor } from './executor.ts';
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

// With idempotency keys: ids are drawn first (uuids come with the input), keys are claimed (ON
// CONFLICT DO NOTHING waits for a concurrent transaction holding the same key), and only events
// whose key was claimed, or that have none, are inserted. Rows without an id were duplicates: see
// findDuplicates.
const insertIdempotentEvents = `
WITH input AS MATERIALIZED (
  SELECT nextval(pg_get_serial_sequence('crier.events', 'id')) AS id, x.uuid, a.n,
         x.topic, x.key, x.payload, x.headers, x.idempotency_key, ${delayedAt} AS deliver_at, x.version
  FROM jsonb_array_elements($1::text::jsonb) WITH ORDINALITY AS a(v, n)
  CROSS JOIN LATERAL jsonb_to_record(a.v) AS x(${inputColumns})
), claimed AS (
  INSERT INTO crier.idempotency_keys (topic, key, event_id, event_uuid)
  SELECT topic, idempotency_key, id, uuid FROM input WHERE idempotency_key IS NOT NULL ORDER BY n
  ON CONFLICT (topic, key) DO NOTHING
  RETURNING event_id
), inserted AS (
  INSERT INTO crier.events (id, uuid, topic, key, payload, headers, deliver_at, version) OVERRIDING SYSTEM VALUE
  SELECT id, uuid, topic, key, payload, headers, deliver_at, version FROM input
  WHERE idempotency_key IS NULL OR id IN (SELECT event_id FROM claimed)
  ORDER BY n
  RETURNING id, created_at
)
SELECT e.id::text AS id, i.uuid::text AS uuid, i.topic, i.version, e.created_at
FROM input i LEFT JOIN inserted e ON e.id = i.id
ORDER BY i.n`;

// A separate statement, so that it sees what a concurrent transaction committed while we waited.
const findDuplicates = `
SELECT k.topic, k.key, k.event_id::text AS id, k.event_uuid::text AS uuid, k.created_at
FROM crier.idempotency_keys k
JOIN jsonb_to_recordset($1::text::jsonb) AS x(topic text, key text) ON k.topic = x.topic AND k.key = x.key`;

export async function publishEvents(
  executor: Executor,
  schema: string,
  events: readonly EventInput[],
): Promise<PublishedEvent[]> {
  if (events.length === 0) return [];
  const batch = `[${events.map(encodeEvent).join(',')}]`;
  const idempotent = events.some((e) => e.idempotencyKey != null);
  try {
    const rows = await runQuery(executor, inSchema(idempotent ? insertIdempotentEvents : insertEvents, schema), [batch]);
    const published = rows.map(toPublished);
    const duplicates = events.flatMap((e, i) => (published[i]!.id == null ? [{ topic: e.topic, key: e.idempotencyKey! }] : []));
    if (duplicates.length === 0) return published;
    const found = await runQuery(executor, inSchema(findDuplicates, schema), [JSON.stringify(duplicates)]);
    const byKey = new Map(found.map((row) => [`${row.topic}\u0000${row.key}`, toPublished(row)]));
    return published.map((event, i) => {
      if (event.id != null) return event;
      const first = byKey.get(`${events[i]!.topic}\u0000${events[i]!.idempotencyKey}`);
      if (!first) throw new CrierError('CRIER_INVALID_IDEMPOTENCY_KEY', `idempotency key ${quote(events[i]!.idempotencyKey)} was taken and then pruned during this publish; retry it`);
      // The first publish of this key was this same event: same version (not read back, since a
      // publisher role may not read earlier events).
      return { ...first, version: events[i]!.version ?? 1, duplicate: true };
    });
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
    duplicate: false,
  };
}

/** Validates one event and encodes it as the JSON row jsonb_to_recordset reads. */
function encodeEvent(event: EventInput, index: number): string {
  const where = (what: string) => `event ${index} (${quote(event?.topic)}): ${what}`;
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
  if (event.headers != null && (typeof event.headers !== 'object' || Array.isArray(event.headers))) {
    throw new CrierError('CRIER_INVALID_HEADERS', where('headers must be a plain object'));
  }
  const headers = withCausation(event.headers ?? {}, event.causedBy, where);
  const idempotencyKey = event.idempotencyKey ?? null;
  if (idempotencyKey !== null && (typeof idempotencyKey !== 'string' || idempotencyKey === '' || idempotencyKey.length > 255 || unstorable(JSON.stringify(idempotencyKey)))) {
    throw new CrierError('CRIER_INVALID_IDEMPOTENCY_KEY', where('idempotencyKey must be a string of 1-255 characters'));
  }
  const { deliverAt, delayMs } = deliveryTime(event, where);
  for (const name of ['correlationId', 'causationId'] as const) {
    if (headers[name] !== undefined && typeof headers[name] !== 'string') {
      throw new CrierError('CRIER_INVALID_HEADERS', where(`headers.${name} must be a string`));
    }
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
