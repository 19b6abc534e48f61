// Requeue: dead deliveries back to pending, attempts reset, due now, through crier.requeue (which
// only ever updates rows that are still dead, so it is safe while workers run). Large selections
// move in batches in id order, one short transaction each; a delivery that dies again while the
// requeue runs is behind the batch position, so it is not picked up again.
import { CrierError } from '../errors.ts';
import { pgArray } from '../sql-helpers.ts';
import { query, toNumber, type AdminDb, type Row } from './db.ts';
import { checkDeadFilter, type DeadFilter } from './dead.ts';
import { checkEventRef, checkId, isUuid } from './refs.ts';

export interface RequeueSelection extends DeadFilter {
  /** Delivery ids. */
  deliveryIds?: readonly (string | number)[];
  /** Event ids or uuids: every dead delivery of these events (narrowed by the other filters). */
  events?: readonly (string | number)[];
  /** Every dead delivery; cannot be combined with ids or filters. */
  allDead?: boolean;
}

export interface RequeueOptions {
  /** Count and sample what would move, change nothing. */
  dryRun?: boolean;
  /** Deliveries per transaction (default 1000). */
  batchSize?: number;
  /** How many of the moved deliveries to return in `sample` (default 20). */
  sampleSize?: number;
}

export interface RequeuedDelivery {
  deliveryId: string;
  eventId: string;
  subscription: string;
  topic: string;
  lastError: string | null;
}

export interface RequeueResult {
  dryRun: boolean;
  /** Deliveries moved (or that would move) back to pending. */
  count: number;
  bySubscription: Record<string, number>;
  /** The first deliveries moved, in id order. */
  sample: RequeuedDelivery[];
  /** Delivery ids asked for by id that were not moved, with their state (requeue never touches a delivery that is not dead). */
  skipped: { deliveryId: string; state: string }[];
}

const requeueCall = `
  SELECT delivery_id::text, event_id::text, subscription, topic, last_error
  FROM crier.requeue(
    p_delivery_ids => $1::text::bigint[], p_subscription => $2::text, p_topic => $3::text, p_error => $4::text,
    p_since => $5::timestamptz, p_until => $6::timestamptz, p_all_dead => $7::boolean, p_dry_run => $8::boolean,
    p_limit => $9::integer, p_event_ids => $10::text::bigint[], p_after_id => $11::bigint)`;

export async function requeue(db: AdminDb, selection: RequeueSelection, options: RequeueOptions = {}): Promise<RequeueResult> {
  const deliveryIds = selection.deliveryIds?.map((id) => checkId(id, 'delivery'));
  const eventIds = selection.events ? await resolveEvents(db, selection.events) : undefined;
  const filtered = [selection.subscription, selection.topic, selection.error, selection.since, selection.until].some((v) => v !== undefined);
  if (selection.allDead && (filtered || deliveryIds?.length || eventIds?.length)) {
    throw new CrierError('CRIER_INVALID_OPTION', 'requeue: "all dead" cannot be combined with ids or filters');
  }
  if (!selection.allDead && !filtered && !deliveryIds?.length && !eventIds?.length) {
    throw new CrierError('CRIER_INVALID_OPTION', 'requeue: say what to requeue: delivery ids, events, a filter (subscription, topic, error, since, until) or all dead');
  }
  await checkDeadFilter(db, selection);
  const batchSize = options.batchSize ?? 1000;
  const sampleSize = options.sampleSize ?? 20;
  const params = (dryRun: boolean, limit: number | null, afterId: string | null = null) => [
    deliveryIds ? pgArray(deliveryIds) : null,
    selection.subscription ?? null,
    selection.topic ?? null,
    selection.error ?? null,
    selection.since ?? null,
    selection.until ?? null,
    selection.allDead ?? false,
    dryRun,
    limit,
    eventIds ? pgArray(eventIds) : null,
    afterId,
  ];
  const result: RequeueResult = { dryRun: options.dryRun ?? false, count: 0, bySubscription: {}, sample: [], skipped: [] };
  const moved = new Set<string>();

  if (options.dryRun) {
    const counts = await query(
      db,
      `SELECT subscription, count(*) AS n FROM (${requeueCall}) r GROUP BY subscription ORDER BY subscription`,
      params(true, null),
    );
    for (const c of counts) {
      result.bySubscription[c.subscription] = toNumber(c.n);
      result.count += toNumber(c.n);
    }
    const sample = await query(db, requeueCall, params(true, Math.max(1, sampleSize)));
    result.sample = sample.slice(0, sampleSize).map(toRequeued);
    if (deliveryIds) (await query(db, requeueCall, params(true, deliveryIds.length))).forEach((r) => moved.add(r.delivery_id));
  } else {
    let afterId: string | null = null;
    for (;;) {
      const rows = await query(db, requeueCall, params(false, batchSize, afterId));
      if (rows.length === 0) break;
      afterId = rows.at(-1)!.delivery_id;
      for (const row of rows) {
        moved.add(row.delivery_id);
        result.count++;
        result.bySubscription[row.subscription] = (result.bySubscription[row.subscription] ?? 0) + 1;
        if (result.sample.length < sampleSize) result.sample.push(toRequeued(row));
      }
      if (!deliveryIds) moved.clear(); // only explicit ids are reported as skipped
    }
  }
  if (deliveryIds) {
    const rest = deliveryIds.filter((id) => !moved.has(id));
    if (rest.length > 0) {
      const states = await query(db, 'SELECT d.id::text AS id, d.state FROM crier.deliveries d WHERE d.id = ANY ($1::text::bigint[]) ORDER BY d.id', [pgArray(rest)]);
      result.skipped = states.map((s) => ({ deliveryId: s.id, state: s.state }));
    }
  }
  return result;
}

function toRequeued(row: Row): RequeuedDelivery {
  return {
    deliveryId: row.delivery_id,
    eventId: row.event_id,
    subscription: row.subscription,
    topic: row.topic,
    lastError: row.last_error,
  };
}

/** Event ids as given, uuids looked up; an unknown uuid is CRIER_UNKNOWN_EVENT (unknown ids are reported by SQL). */
async function resolveEvents(db: AdminDb, refs: readonly (string | number)[]): Promise<string[]> {
  const checked = refs.map(checkEventRef);
  const uuids = checked.filter(isUuid);
  if (uuids.length === 0) return checked;
  const rows = await query(db, 'SELECT uuid::text AS uuid, id::text AS id FROM crier.events WHERE uuid = ANY ($1::text::uuid[])', [pgArray(uuids)]);
  const byUuid = new Map(rows.map((r) => [r.uuid as string, r.id as string]));
  return checked.map((ref) => {
    if (!isUuid(ref)) return ref;
    const id = byUuid.get(ref);
    if (!id) throw new CrierError('CRIER_UNKNOWN_EVENT', `no event ${ref}`);
    return id;
  });
}
