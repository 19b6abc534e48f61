// Dead letters: deliveries that used up their attempts (or gave up), with their last error.
// The filters are those of crier.find_dead, which crier.requeue uses too: what `dead list` shows
// for a filter is what `requeue` with the same filter moves.
import { CrierError } from '../errors.ts';
import { assertPattern } from '../topics.ts';
import { assertSubscription, query, stream, type AdminDb } from './db.ts';
import { deliveryColumns, toDeliveryRecord, toEventRecord, type DeliveryRecord, type EventRecord } from './events.ts';
import { checkId } from './refs.ts';

export interface DeadFilter {
  subscription?: string;
  /** Topic pattern of the event. */
  topic?: string;
  /** Case-insensitive substring of the last error. */
  error?: string;
  /** Died at or after. */
  since?: Date;
  /** Died before. */
  until?: Date;
}

export interface DeadLetter {
  deliveryId: string;
  subscription: string;
  eventId: string;
  eventUuid: string;
  topic: string;
  key: string | null;
  attempts: number;
  lastError: string | null;
  diedAt: Date | null;
  publishedAt: Date;
}

export async function checkDeadFilter(db: AdminDb, filter: DeadFilter): Promise<void> {
  if (filter.topic !== undefined) assertPattern(filter.topic);
  if (filter.subscription !== undefined) await assertSubscription(db, filter.subscription);
}

/** Dead deliveries matching the filter, most recently dead first; streams. */
export async function* listDead(db: AdminDb, filter: DeadFilter = {}, limit?: number): AsyncGenerator<DeadLetter> {
  await checkDeadFilter(db, filter);
  const rows = stream(
    db,
    `SELECT f.delivery_id::text, f.subscription, f.event_id::text, f.event_uuid::text, f.topic, f.key, f.attempts,
            f.last_error, f.died_at, f.published_at
     FROM crier.find_dead(p_subscription => $1, p_topic => $2, p_error => $3, p_since => $4, p_until => $5) f
     ORDER BY f.died_at DESC NULLS LAST, f.delivery_id DESC
     LIMIT $6::bigint`,
    [filter.subscription ?? null, filter.topic ?? null, filter.error ?? null, filter.since ?? null, filter.until ?? null, limit ?? null],
  );
  for await (const r of rows) {
    yield {
      deliveryId: r.delivery_id,
      subscription: r.subscription,
      eventId: r.event_id,
      eventUuid: r.event_uuid,
      topic: r.topic,
      key: r.key,
      attempts: r.attempts,
      lastError: r.last_error,
      diedAt: r.died_at,
      publishedAt: r.published_at,
    };
  }
}

/** One delivery (dead or not) with its event, its last error's stack and its error history. */
export async function getDelivery(db: AdminDb, id: string | number): Promise<{ delivery: DeliveryRecord; event: EventRecord | null }> {
  const deliveryId = checkId(id, 'delivery');
  const [row] = await query(db, `${deliveryColumns} WHERE d.id = $1::bigint`, [deliveryId]);
  if (!row) throw new CrierError('CRIER_UNKNOWN_DELIVERY', `no delivery ${deliveryId}`);
  const [event] = await query(
    db,
    'SELECT id::text AS id, uuid::text AS uuid, topic, key, payload, headers, created_at FROM crier.events WHERE id = $1::bigint',
    [row.event_id],
  );
  return { delivery: toDeliveryRecord(row), event: event ? toEventRecord(event) : null };
}
