// Reading the log: list events with their delivery summary, show one event with every delivery,
// and tail new events as they commit. Listings stream through a cursor.
import { eventChain, type ChainLink } from '../causation.ts';
import { CrierError } from '../errors.ts';
import { assertPattern } from '../topics.ts';
import { query, stream, toNumber, type AdminDb, type Row } from './db.ts';
import { checkEventRef, isUuid } from './refs.ts';

export interface EventSummary {
  id: string;
  uuid: string;
  topic: string;
  key: string | null;
  publishedAt: Date;
  /**
   * Number of delivery rows of this event in each state ("pending", "retrying", "running", "done",
   * "dead"). A subscription with history 'failures' keeps no row of a delivery that succeeded at its
   * first attempt, so it is not counted here.
   */
  deliveries: Record<string, number>;
}

export interface EventRecord {
  id: string;
  uuid: string;
  topic: string;
  key: string | null;
  payload: unknown;
  headers: Record<string, unknown>;
  publishedAt: Date;
}

export interface DeliveryRecord {
  id: string;
  eventId: string;
  subscription: string;
  state: 'pending' | 'running' | 'done' | 'dead' | 'waiting';
  /** state, with "retrying" for a pending delivery that has been attempted before. */
  status: string;
  attempts: number;
  availableAt: Date;
  worker: string | null;
  lockedUntil: Date | null;
  lastError: string | null;
  lastErrorStack: string | null;
  /** Every failed attempt (and requeue), oldest first. */
  errors: unknown[];
  queuedAt: Date;
  /** When its latest attempt started. */
  startedAt: Date | null;
  finishedAt: Date | null;
  /** The worker that holds or last held it, as crier.workers sees it now: live, stale, stopped; null if unknown. */
  workerStatus: 'live' | 'stale' | 'stopped' | null;
  /** When that worker was last seen (its heartbeat); null if unknown. */
  workerLastSeenAt: Date | null;
}

export interface EventFilter {
  /** Topic pattern: "order.*", "order.#". */
  topic?: string;
  key?: string;
  since?: Date;
  until?: Date;
  /** At most this many (default: no limit; the listing streams). */
  limit?: number;
  /** "desc" (default): newest first. */
  order?: 'asc' | 'desc';
}

const deliverySummary = `
  (SELECT coalesce(jsonb_object_agg(s.status, s.n), '{}') FROM (
     SELECT CASE WHEN d.state = 'pending' AND d.attempts > 0 THEN 'retrying' ELSE d.state END AS status, count(*) AS n
     FROM crier.deliveries d WHERE d.event_id = e.id GROUP BY 1) s) AS deliveries`;

export async function* listEvents(db: AdminDb, filter: EventFilter = {}): AsyncGenerator<EventSummary> {
  if (filter.topic !== undefined) assertPattern(filter.topic);
  const order = filter.order === 'asc' ? 'ASC' : 'DESC';
  const rows = stream(
    db,
    `SELECT e.id::text AS id, e.uuid::text AS uuid, e.topic, e.key, e.created_at, ${deliverySummary}
     FROM crier.events e
     WHERE ($1::text IS NULL OR crier.topic_matches(e.topic, $1::text))
       AND ($2::text IS NULL OR e.key = $2::text)
       AND ($3::timestamptz IS NULL OR e.created_at >= $3::timestamptz)
       AND ($4::timestamptz IS NULL OR e.created_at < $4::timestamptz)
     ORDER BY e.id ${order}
     LIMIT $5::bigint`,
    [filter.topic ?? null, filter.key ?? null, filter.since ?? null, filter.until ?? null, filter.limit ?? null],
  );
  for await (const row of rows) yield toSummary(row);
}

function toSummary(row: Row): EventSummary {
  return {
    id: row.id,
    uuid: row.uuid,
    topic: row.topic,
    key: row.key,
    publishedAt: row.created_at,
    deliveries: Object.fromEntries(Object.entries(row.deliveries ?? {}).map(([k, v]) => [k, toNumber(v)])),
  };
}

export interface EventDetail {
  event: EventRecord;
  /** The delivery rows kept of this event. */
  deliveries: DeliveryRecord[];
  /**
   * Subscriptions with history 'failures' that keep no row of this event although they match its
   * topic and existed when it was published: their delivery succeeded at its first attempt (such a
   * delivery leaves no row), or its row was pruned. Read from the subscriptions as they are now.
   */
  unrecorded: string[];
  /**
   * The causation chain the event belongs to (crier.event_chain: root first, each event after its
   * cause), or [] when it belongs to none: no correlationId/causationId header, and no event names it.
   */
  chain: ChainLink[];
}

/** One event with every delivery of it and its causation chain. `ref` is the event id or uuid. */
export async function getEvent(db: AdminDb, ref: string | number): Promise<EventDetail> {
  const key = checkEventRef(ref);
  const [row] = await query(
    db,
    `SELECT id::text AS id, uuid::text AS uuid, topic, key, payload, headers, created_at FROM crier.events
     WHERE ${isUuid(key) ? 'uuid = $1::uuid' : 'id = $1::bigint'}`,
    [key],
  );
  if (!row) throw new CrierError('CRIER_UNKNOWN_EVENT', `no event ${key}`);
  const deliveries = await query(db, `${deliveryColumns} WHERE d.event_id = $1::bigint ORDER BY d.subscription, d.id`, [row.id]);
  const unrecorded = await query(
    db,
    `SELECT s.name FROM crier.subscriptions s
     WHERE s.history = 'failures' AND s.created_at <= $2::timestamptz
       AND EXISTS (SELECT 1 FROM unnest(s.topics) p WHERE crier.topic_matches($3::text, p))
       AND NOT EXISTS (SELECT 1 FROM crier.deliveries d WHERE d.event_id = $1::bigint AND d.subscription = s.name)
     ORDER BY s.name`,
    [row.id, row.created_at, row.topic],
  );
  const event = toEventRecord(row);
  const chain = await eventChain(db.sql, event.id, { schema: db.schema });
  const linked = 'correlationId' in event.headers || 'causationId' in event.headers;
  return {
    event,
    deliveries: deliveries.map(toDeliveryRecord),
    unrecorded: unrecorded.map((r) => r.name as string),
    chain: linked || chain.length > 1 ? chain : [],
  };
}

export const deliveryColumns = `
  SELECT d.id::text AS id, d.event_id::text AS event_id, d.subscription, d.state,
         CASE WHEN d.state = 'pending' AND d.attempts > 0 THEN 'retrying' ELSE d.state END AS status,
         d.attempts, d.available_at, d.worker, d.locked_until, d.last_error, d.last_error_stack, d.errors,
         d.created_at, d.started_at, d.finished_at, w.status AS worker_status, w.last_seen_at AS worker_last_seen_at
  FROM crier.deliveries d
  LEFT JOIN crier.workers w ON w.worker = d.worker`;

export function toEventRecord(row: Row): EventRecord {
  return {
    id: row.id,
    uuid: row.uuid,
    topic: row.topic,
    key: row.key,
    payload: row.payload,
    headers: row.headers ?? {},
    publishedAt: row.created_at,
  };
}

export function toDeliveryRecord(row: Row): DeliveryRecord {
  return {
    id: row.id,
    eventId: row.event_id,
    subscription: row.subscription,
    state: row.state,
    status: row.status,
    attempts: row.attempts,
    availableAt: row.available_at,
    worker: row.worker,
    lockedUntil: row.locked_until,
    lastError: row.last_error,
    lastErrorStack: row.last_error_stack,
    errors: row.errors ?? [],
    queuedAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    workerStatus: row.worker_status ?? null,
    workerLastSeenAt: row.worker_last_seen_at ?? null,
  };
}
