// The checker: compares what producers were told was committed, what Postgres holds, and what
// handlers recorded, and says what was lost, duplicated or invented. Read-only; one query.
import type postgres from 'postgres';

/** A range of sequence numbers a producer saw COMMIT succeed for. */
export interface AckedRange {
  producer: string;
  from: number;
  to: number;
}

export interface Verdict {
  /** Committed events (rows in crier.events). */
  events: number;
  /** Events whose commit a producer saw succeed. */
  acked: number;
  /** Acknowledged commits missing from the log: Postgres lost a commit. Must be 0. */
  ackedMissing: number;
  /** Events of transactions rolled back on purpose that are in the log anyway. Must be 0. */
  rolledBackCommitted: number;
  /** Committed events never handled to the end. Must be 0. */
  lost: number;
  /** Extra handlings of the same event (at-least-once: allowed, counted). */
  duplicates: number;
  /** Handlings of events that were never committed. Must be 0. */
  phantom: number;
  /** Deliveries not done (pending, running or dead). Must be 0 once drained. */
  notDone: number;
  /** Deliveries still claimed by a worker that was killed. Must be 0 once its lease passed. */
  stuck: number;
  /** Done deliveries whose completing (worker, attempt) never finished the handler: a stale or forged ack won. Must be 0. */
  wrongWinner: number;
}

const query = `
WITH acked AS (
  SELECT a->>'producer' AS producer, generate_series((a->>'from')::int, (a->>'to')::int) AS seq
  FROM jsonb_array_elements($1::text::jsonb) a
), ev AS (
  SELECT id, payload->>'producer' AS producer, (payload->>'seq')::int AS seq, (payload->>'rollback')::boolean AS rollback
  FROM crier.events WHERE topic = 'faults.event'
), h AS (
  SELECT event_id, count(*) AS n FROM handled GROUP BY event_id
)
SELECT
  (SELECT count(*) FROM ev)::int AS events,
  (SELECT count(*) FROM acked)::int AS acked,
  (SELECT count(*) FROM acked a WHERE NOT EXISTS (SELECT 1 FROM ev WHERE ev.producer = a.producer AND ev.seq = a.seq))::int AS acked_missing,
  (SELECT count(*) FROM ev WHERE rollback)::int AS rolled_back_committed,
  (SELECT count(*) FROM ev WHERE NOT EXISTS (SELECT 1 FROM h WHERE h.event_id = ev.id))::int AS lost,
  (SELECT coalesce(sum(n - 1), 0) FROM h)::int AS duplicates,
  (SELECT count(*) FROM handled x WHERE x.rollback OR NOT EXISTS (SELECT 1 FROM ev WHERE ev.id = x.event_id))::int AS phantom,
  (SELECT count(*) FROM crier.deliveries WHERE state <> 'done')::int AS not_done,
  (SELECT count(*) FROM crier.deliveries WHERE state = 'running' AND worker = ANY ($2::text::text[]))::int AS stuck,
  (SELECT count(*) FROM crier.deliveries d WHERE d.state = 'done' AND NOT EXISTS (
     SELECT 1 FROM handled x WHERE x.event_id = d.event_id AND x.worker = d.worker AND x.attempt = d.attempts))::int AS wrong_winner`;

export const handledTable = `
CREATE TABLE handled (
  event_id bigint NOT NULL,
  worker text NOT NULL,
  attempt integer NOT NULL,
  rollback boolean NOT NULL,
  at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX handled_event ON handled (event_id)`;

export async function check(sql: postgres.Sql, acked: AckedRange[], deadWorkers: string[]): Promise<Verdict> {
  const workers = `{${deadWorkers.map((w) => `"${w.replace(/[\\"]/g, '\\$&')}"`).join(',')}}`;
  const [row] = await sql.unsafe(query, [JSON.stringify(acked), workers]);
  return {
    events: row!.events,
    acked: row!.acked,
    ackedMissing: row!.acked_missing,
    rolledBackCommitted: row!.rolled_back_committed,
    lost: row!.lost,
    duplicates: row!.duplicates,
    phantom: row!.phantom,
    notDone: row!.not_done,
    stuck: row!.stuck,
    wrongWinner: row!.wrong_winner,
  };
}

/** The invariants that must hold; an empty list means the scenario passed. */
export function violations(v: Verdict): string[] {
  const out: string[] = [];
  if (v.ackedMissing > 0) out.push(`${v.ackedMissing} acknowledged commits missing`);
  if (v.rolledBackCommitted > 0) out.push(`${v.rolledBackCommitted} rolled-back events in the log`);
  if (v.lost > 0) out.push(`${v.lost} committed events never handled`);
  if (v.phantom > 0) out.push(`${v.phantom} handlings of uncommitted events`);
  if (v.notDone > 0) out.push(`${v.notDone} deliveries not done`);
  if (v.stuck > 0) out.push(`${v.stuck} deliveries still claimed by killed workers`);
  if (v.wrongWinner > 0) out.push(`${v.wrongWinner} deliveries completed by an attempt that did not finish`);
  if (v.events === 0) out.push('no events were committed: the scenario proved nothing');
  return out;
}

/** Why attempts ended without success, from the deliveries' own error history. */
export async function attemptErrors(sql: postgres.Sql): Promise<string> {
  const rows = await sql`
    SELECT regexp_replace(e->>'error', '[0-9]+', 'N', 'g') AS error, count(*)::int AS n
    FROM crier.deliveries d, jsonb_array_elements(d.errors) e
    GROUP BY 1 ORDER BY 2 DESC LIMIT 5`;
  return rows.map((r) => `${r.n}x "${String(r.error).slice(0, 60)}"`).join(', ');
}
