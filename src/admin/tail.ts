// Following the log as events commit. Tail polls by id (default every 500 ms) instead of LISTEN:
// the fan-out trigger notifies only parked workers, and a notify per publish for the sake of an
// occasional operator would put every producer back on the commit-time NOTIFY lock. A poll is one
// primary-key range read by the one process that tails; producers pay nothing.
//
// Ids are taken from a sequence before commit, so they commit out of order: a poll can see id 11
// while id 10 is still in flight. Tail therefore never moves its "settled" position past an id
// until every transaction that was running when it saw that id has ended (the snapshot's xmin has
// passed the xmax recorded then); between the settled position and the newest id it remembers what
// it printed, so nothing is skipped and nothing printed twice.
import { assertPattern } from '../topics.ts';
import { query, type AdminDb } from './db.ts';
import { toEventRecord, type EventRecord } from './events.ts';

export interface TailOptions {
  topic?: string;
  /** Poll interval in milliseconds (default 500). */
  intervalMs?: number;
  /** Stops the tail. */
  signal?: AbortSignal;
  /** Start after this event id (default: the newest event when tail starts). */
  afterId?: string;
  /** Called once the starting position is taken: every event committed from then on is shown. */
  onStart?: (afterId: string) => void;
}

interface Mark {
  /** Every id up to this one was assigned before the poll that recorded it... */
  upTo: bigint;
  /** ...by a transaction older than this xid. */
  xmax: bigint;
}

const pageSize = 500;
/** Ids below the starting point that a transaction running at the start may still commit. */
const lookBack = 1000;

export async function* tailEvents(db: AdminDb, options: TailOptions = {}): AsyncGenerator<EventRecord> {
  if (options.topic !== undefined) assertPattern(options.topic);
  const interval = options.intervalMs ?? 500;
  const printed = new Set<bigint>();
  const marks: Mark[] = [];
  let settled: bigint;
  if (options.afterId !== undefined) {
    settled = BigInt(options.afterId);
  } else {
    // Start at the newest event, but a transaction already running may still commit a lower id:
    // look back a little, count what is already visible there as seen, and settle as usual.
    const [start] = await query(
      db,
      `SELECT coalesce(max(id), 0)::text AS newest, pg_snapshot_xmax(pg_current_snapshot())::text AS xmax,
              coalesce((SELECT array_agg(id)::text[] FROM crier.events WHERE id > (SELECT max(id) FROM crier.events) - ${lookBack}), '{}') AS visible
       FROM crier.events`,
    );
    const newest = BigInt(start!.newest);
    settled = newest > BigInt(lookBack) ? newest - BigInt(lookBack) : 0n;
    for (const id of start!.visible as string[]) printed.add(BigInt(id));
    marks.push({ upTo: newest, xmax: BigInt(start!.xmax) });
  }
  options.onStart?.(marks[0]?.upTo.toString() ?? settled.toString());

  while (!options.signal?.aborted) {
    const rows = await query(
      db,
      `SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin, pg_snapshot_xmax(pg_current_snapshot())::text AS xmax,
              (SELECT coalesce(max(id), 0) FROM crier.events)::text AS newest,
              e.id::text AS id, e.uuid::text AS uuid, e.topic, e.key, e.payload, e.headers, e.created_at
       FROM (SELECT 1) one
       LEFT JOIN LATERAL (
         SELECT * FROM crier.events e
         WHERE e.id > $1::bigint AND ($2::text IS NULL OR crier.topic_matches(e.topic, $2::text))
         ORDER BY e.id LIMIT ${pageSize}) e ON true
       ORDER BY e.id`,
      [settled.toString(), options.topic ?? null],
    );
    const head = rows[0]!;
    const events = rows.filter((r) => r.id !== null);
    for (const row of events) {
      const id = BigInt(row.id);
      if (printed.has(id)) continue;
      printed.add(id);
      yield toEventRecord(row);
    }
    const full = events.length === pageSize;
    // A full page may stop short of the newest id: settle no further than what was read.
    // Under a transaction that never ends, marks pile up: dropping the oldest only delays settling.
    if (marks.length >= 1000) marks.shift();
    marks.push({ upTo: full ? BigInt(events.at(-1)!.id) : BigInt(head.newest), xmax: BigInt(head.xmax) });
    const xmin = BigInt(head.xmin);
    while (marks.length > 0 && marks[0]!.xmax <= xmin) {
      const mark = marks.shift()!;
      if (mark.upTo > settled) settled = mark.upTo;
    }
    for (const id of printed) if (id <= settled) printed.delete(id);
    if (!full) await sleep(interval, options.signal);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
