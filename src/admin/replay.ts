// Replay: queue past events again for one subscription, through crier.replay (which skips an event
// whose earlier delivery to the subscription is still pending or running). A long range goes in
// batches in id order, one short transaction each, and stops at the newest event that existed when
// the replay began, so it ends even while producers keep publishing.
import { CrierError } from '../errors.ts';
import { assertPattern } from '../topics.ts';
import { assertSubscription, query, type AdminDb } from './db.ts';
import { checkId } from './refs.ts';

export interface ReplayOptions {
  subscription: string;
  /** First event: an event id, or a time (events published at or after it). */
  from: string | number | Date;
  /** Last event (inclusive): an event id or a time. Default: the newest event now. */
  to?: string | number | Date;
  /** Only events matching this pattern (as well as the subscription's own patterns). */
  topic?: string;
  dryRun?: boolean;
  /** Events examined per transaction (default 1000). */
  batchSize?: number;
}

export interface ReplayResult {
  dryRun: boolean;
  subscription: string;
  /** Events queued again (or that would be). */
  queued: number;
  /** Events skipped because a delivery of them to this subscription is still waiting, pending or running. */
  skipped: number;
  firstEventId: string | null;
  lastEventId: string | null;
}

const replayCall = `
  SELECT event_id::text, queued FROM crier.replay($1::text,
    p_from_id => $2::bigint, p_to_id => $3::bigint, p_from_time => $4::timestamptz, p_to_time => $5::timestamptz,
    p_topic => $6::text, p_dry_run => $7::boolean, p_limit => $8::integer)`;

export async function replay(db: AdminDb, options: ReplayOptions): Promise<ReplayResult> {
  if (options.topic !== undefined) assertPattern(options.topic);
  const from = bound(options.from, 'from');
  const to = options.to === undefined ? undefined : bound(options.to, 'to');
  await assertSubscription(db, options.subscription);
  const batchSize = options.batchSize ?? 1000;
  const toId = to?.id ?? (to ? null : ((await query(db, 'SELECT coalesce(max(id), 0)::text AS id FROM crier.events'))[0]!.id as string));
  const result: ReplayResult = {
    dryRun: options.dryRun ?? false,
    subscription: options.subscription,
    queued: 0,
    skipped: 0,
    firstEventId: null,
    lastEventId: null,
  };
  let fromId = from.id ?? null;
  for (;;) {
    const rows = await query(db, replayCall, [
      options.subscription, fromId, toId, from.time ?? null, to?.time ?? null, options.topic ?? null, result.dryRun, batchSize,
    ]);
    for (const row of rows) {
      if (row.queued) result.queued++;
      else result.skipped++;
      result.firstEventId ??= row.event_id;
      result.lastEventId = row.event_id;
    }
    if (rows.length < batchSize) break;
    fromId = (BigInt(rows.at(-1)!.event_id) + 1n).toString();
  }
  return result;
}

function bound(value: string | number | Date, what: string): { id?: string; time?: Date } {
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw new CrierError('CRIER_INVALID_OPTION', `replay ${what}: invalid date`);
    return { time: value };
  }
  return { id: checkId(value, `replay ${what}: event`) };
}
