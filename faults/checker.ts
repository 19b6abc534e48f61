// The checker: compares what producers were told was committed, what Postgres holds, and what
// handlers recorded, and says what was lost, duplicated, invented or handled out of order.
// Read-only; one query. The three subscriptions it judges are described in worker.ts.
//
// Outcomes come from the handlers' own records (handled, handled_tx, handled_ordered), never from
// done rows: under history 'failures' (worker.ts HISTORY) a delivery that succeeded at its first
// attempt leaves no row. What rows there are are checked against the records: a done row's
// (worker, attempt) must have finished the handler, and a committed event without a row of a
// 'failures' subscription must have a finished first attempt (the only attempt whose ack deletes).
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
  /** Committed events never handled to the end, summed over the three subscriptions. Must be 0. */
  lost: number;
  /** ... of them by the transactional subscription, and by the ordered one. */
  txLost: number;
  orderedLost: number;
  /** Extra handlings of the same event (at-least-once: allowed, counted). */
  duplicates: number;
  /** Extra handlings recorded by the transactional subscription (its record commits with its ack). Must be 0. */
  txDuplicates: number;
  /** Committed keyed events (topic faults.keyed), for the ordered subscription. */
  keyed: number;
  /** Extra completed handlings of keyed events (the ordered subscription is at-least-once): counted. */
  orderedDuplicates: number;
  /**
   * Keyed events whose first handling started before the first completed handling of the event
   * published before it under the same key (or while that one had none). Must be 0.
   */
  orderViolations: number;
  /** Handlings of events that were never committed, in any of the three tables. Must be 0. */
  phantom: number;
  /** Deliveries not done (pending, running or dead). Must be 0 once drained. */
  notDone: number;
  /** Deliveries still claimed by a worker that was killed. Must be 0 once its lease passed. */
  stuck: number;
  /** Done deliveries whose completing (worker, attempt) never finished the handler: a stale or forged ack won. Must be 0. */
  wrongWinner: number;
  /**
   * History 'failures': committed events a subscription kept no row of (deleted at the ack of a
   * first-attempt success) whose first attempt never finished the handler: an ack deleted a
   * delivery it should not have. Must be 0 (unless rows were pruned: soak.ts).
   */
  forgottenUnproven: number;
  /** History 'failures': done rows of a first attempt with no error, which the ack should have deleted. Must be 0. */
  keptClean: number;
  /** How many of the three subscriptions run with history 'failures' (0 or 3). */
  failuresSubscriptions: number;
  /** History 'failures': (event, subscription) pairs left without a row, i.e. deleted first-attempt successes. */
  forgotten: number;
}

const query = `
WITH acked AS (
  SELECT a->>'producer' AS producer, generate_series((a->>'from')::int, (a->>'to')::int) AS seq
  FROM jsonb_array_elements($1::text::jsonb) a
), ev AS (
  SELECT id, payload->>'producer' AS producer, (payload->>'seq')::int AS seq, (payload->>'rollback')::boolean AS rollback
  FROM crier.events WHERE topic = 'faults.event'
), kev AS (
  SELECT id, key, (payload->>'seq')::int AS seq, (payload->>'pos')::int AS pos, (payload->>'rollback')::boolean AS rollback
  FROM crier.events WHERE topic = 'faults.keyed'
), h AS (
  SELECT event_id, count(*) AS n FROM handled GROUP BY event_id
), htx AS (
  SELECT event_id, count(*) AS n FROM handled_tx GROUP BY event_id
), ho AS (
  -- n numbers every start and completion in the order the database saw them (one sequence).
  SELECT event_id, min(n) FILTER (WHERE phase = 'start') AS first_start, min(n) FILTER (WHERE phase = 'done') AS first_done,
         count(*) FILTER (WHERE phase = 'done') AS done
  FROM handled_ordered GROUP BY event_id
), forgetful AS (
  SELECT name FROM crier.subscriptions WHERE history = 'failures'
), chain AS (
  -- Each keyed event beside the one published just before it under the same key (publish order:
  -- the producer's transaction, then the position in it; a producer owns its keys).
  SELECT kev.id, ho.first_start, ho.first_done,
         lag(ho.first_done) OVER w AS previous_done, lag(kev.id) OVER w AS previous
  FROM kev LEFT JOIN ho ON ho.event_id = kev.id
  WINDOW w AS (PARTITION BY kev.key ORDER BY kev.seq, kev.pos)
)
SELECT
  (SELECT count(*) FROM ev)::int AS events,
  (SELECT count(*) FROM kev)::int AS keyed,
  (SELECT count(*) FROM acked)::int AS acked,
  (SELECT count(*) FROM acked a WHERE NOT EXISTS (SELECT 1 FROM ev WHERE ev.producer = a.producer AND ev.seq = a.seq))::int AS acked_missing,
  ((SELECT count(*) FROM ev WHERE rollback) + (SELECT count(*) FROM kev WHERE rollback))::int AS rolled_back_committed,
  (SELECT count(*) FROM ev WHERE NOT EXISTS (SELECT 1 FROM h WHERE h.event_id = ev.id))::int AS plain_lost,
  (SELECT count(*) FROM ev WHERE NOT EXISTS (SELECT 1 FROM htx WHERE htx.event_id = ev.id))::int AS tx_lost,
  (SELECT count(*) FROM kev WHERE NOT EXISTS (SELECT 1 FROM ho WHERE ho.event_id = kev.id AND ho.done > 0))::int AS ordered_lost,
  (SELECT coalesce(sum(n - 1), 0) FROM h)::int AS duplicates,
  (SELECT coalesce(sum(n - 1), 0) FROM htx)::int AS tx_duplicates,
  (SELECT coalesce(sum(done - 1), 0) FROM ho WHERE done > 0)::int AS ordered_duplicates,
  (SELECT count(*) FROM chain WHERE previous IS NOT NULL AND first_start IS NOT NULL
     AND (previous_done IS NULL OR first_start < previous_done))::int AS order_violations,
  ((SELECT count(*) FROM handled x WHERE x.rollback OR NOT EXISTS (SELECT 1 FROM ev WHERE ev.id = x.event_id))
   + (SELECT count(*) FROM handled_tx x WHERE x.rollback OR NOT EXISTS (SELECT 1 FROM ev WHERE ev.id = x.event_id))
   + (SELECT count(*) FROM handled_ordered x WHERE x.rollback OR NOT EXISTS (SELECT 1 FROM kev WHERE kev.id = x.event_id)))::int AS phantom,
  (SELECT count(*) FROM crier.deliveries WHERE state <> 'done')::int AS not_done,
  (SELECT count(*) FROM crier.deliveries WHERE state = 'running' AND worker = ANY ($2::text::text[]))::int AS stuck,
  (SELECT count(*) FROM crier.deliveries d WHERE d.state = 'done' AND NOT CASE d.subscription
     WHEN 'faults' THEN EXISTS (SELECT 1 FROM handled x WHERE x.event_id = d.event_id AND x.worker = d.worker AND x.attempt = d.attempts)
     WHEN 'faults-tx' THEN EXISTS (SELECT 1 FROM handled_tx x WHERE x.event_id = d.event_id AND x.worker = d.worker AND x.attempt = d.attempts)
     ELSE EXISTS (SELECT 1 FROM handled_ordered x WHERE x.event_id = d.event_id AND x.worker = d.worker AND x.attempt = d.attempts AND x.phase = 'done')
   END)::int AS wrong_winner,
  ((SELECT count(*) FROM ev WHERE 'faults' IN (SELECT name FROM forgetful)
      AND NOT EXISTS (SELECT 1 FROM crier.deliveries d WHERE d.event_id = ev.id AND d.subscription = 'faults')
      AND NOT EXISTS (SELECT 1 FROM handled x WHERE x.event_id = ev.id AND x.attempt = 1))
   + (SELECT count(*) FROM ev WHERE 'faults-tx' IN (SELECT name FROM forgetful)
      AND NOT EXISTS (SELECT 1 FROM crier.deliveries d WHERE d.event_id = ev.id AND d.subscription = 'faults-tx')
      AND NOT EXISTS (SELECT 1 FROM handled_tx x WHERE x.event_id = ev.id AND x.attempt = 1))
   + (SELECT count(*) FROM kev WHERE 'faults-ordered' IN (SELECT name FROM forgetful)
      AND NOT EXISTS (SELECT 1 FROM crier.deliveries d WHERE d.event_id = kev.id AND d.subscription = 'faults-ordered')
      AND NOT EXISTS (SELECT 1 FROM handled_ordered x WHERE x.event_id = kev.id AND x.attempt = 1 AND x.phase = 'done'))
  )::int AS forgotten_unproven,
  (SELECT count(*) FROM crier.deliveries d WHERE d.state = 'done' AND d.attempts = 1 AND d.errors = '[]'
     AND d.subscription IN (SELECT name FROM forgetful))::int AS kept_clean,
  (SELECT count(*) FROM forgetful WHERE name IN ('faults', 'faults-tx', 'faults-ordered'))::int AS failures_subscriptions,
  ((SELECT count(*) FROM ev, forgetful f WHERE f.name IN ('faults', 'faults-tx')
      AND NOT EXISTS (SELECT 1 FROM crier.deliveries d WHERE d.event_id = ev.id AND d.subscription = f.name))
   + (SELECT count(*) FROM kev, forgetful f WHERE f.name = 'faults-ordered'
      AND NOT EXISTS (SELECT 1 FROM crier.deliveries d WHERE d.event_id = kev.id AND d.subscription = f.name))
  )::int AS forgotten`;

export const handledTable = `
CREATE TABLE handled (
  event_id bigint NOT NULL,
  worker text NOT NULL,
  attempt integer NOT NULL,
  rollback boolean NOT NULL,
  at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX handled_event ON handled (event_id);
CREATE TABLE handled_tx (LIKE handled INCLUDING ALL);
CREATE TABLE handled_ordered (
  n bigint GENERATED ALWAYS AS IDENTITY,
  event_id bigint NOT NULL,
  key text NOT NULL,
  worker text NOT NULL,
  attempt integer NOT NULL,
  phase text NOT NULL CHECK (phase IN ('start', 'done')),
  rollback boolean NOT NULL,
  at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX handled_ordered_event ON handled_ordered (event_id)`;

export async function check(sql: postgres.Sql, acked: AckedRange[], deadWorkers: string[]): Promise<Verdict> {
  const workers = `{${deadWorkers.map((w) => `"${w.replace(/[\\"]/g, '\\$&')}"`).join(',')}}`;
  const [row] = await sql.unsafe(query, [JSON.stringify(acked), workers]);
  return {
    events: row!.events,
    acked: row!.acked,
    ackedMissing: row!.acked_missing,
    rolledBackCommitted: row!.rolled_back_committed,
    lost: row!.plain_lost + row!.tx_lost + row!.ordered_lost,
    txLost: row!.tx_lost,
    orderedLost: row!.ordered_lost,
    duplicates: row!.duplicates,
    txDuplicates: row!.tx_duplicates,
    keyed: row!.keyed,
    orderedDuplicates: row!.ordered_duplicates,
    orderViolations: row!.order_violations,
    phantom: row!.phantom,
    notDone: row!.not_done,
    stuck: row!.stuck,
    wrongWinner: row!.wrong_winner,
    forgottenUnproven: row!.forgotten_unproven,
    keptClean: row!.kept_clean,
    failuresSubscriptions: row!.failures_subscriptions,
    forgotten: row!.forgotten,
  };
}

/** The invariants that must hold; an empty list means the scenario passed. */
export function violations(v: Verdict): string[] {
  const out: string[] = [];
  if (v.ackedMissing > 0) out.push(`${v.ackedMissing} acknowledged commits missing`);
  if (v.rolledBackCommitted > 0) out.push(`${v.rolledBackCommitted} rolled-back events in the log`);
  if (v.lost > 0) out.push(`${v.lost} committed events never handled (${v.txLost} by faults-tx, ${v.orderedLost} by faults-ordered)`);
  if (v.txDuplicates > 0) out.push(`${v.txDuplicates} events handled twice by the transactional subscription`);
  if (v.orderViolations > 0) out.push(`${v.orderViolations} keyed events started before their predecessor was done`);
  if (v.phantom > 0) out.push(`${v.phantom} handlings of uncommitted events`);
  if (v.notDone > 0) out.push(`${v.notDone} deliveries not done`);
  if (v.stuck > 0) out.push(`${v.stuck} deliveries still claimed by killed workers`);
  if (v.wrongWinner > 0) out.push(`${v.wrongWinner} deliveries completed by an attempt that did not finish`);
  if (v.forgottenUnproven > 0) out.push(`${v.forgottenUnproven} deliveries deleted at their ack (history 'failures') whose first attempt did not finish`);
  if (v.keptClean > 0) out.push(`${v.keptClean} first-attempt successes kept as done rows although their subscription keeps only failures`);
  if (v.failuresSubscriptions > 0 && v.events > 0 && v.forgotten === 0) out.push("history 'failures' deleted no delivery: the deletion path was not tested");
  if (v.events === 0) out.push('no events were committed: the scenario proved nothing');
  if (v.keyed === 0) out.push('no keyed events were committed: ordering was not tested');
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

/**
 * For a failed run: done deliveries whose (worker, attempt) recorded no finished handling, with
 * whether their event is still in the log and every handling recorded for it.
 */
export async function wrongWinnerDetails(sql: postgres.Sql): Promise<string> {
  const rows = await sql`
    WITH recorded AS (
      SELECT 'faults' AS subscription, event_id, worker, attempt, 'done' AS phase FROM handled
      UNION ALL SELECT 'faults-tx', event_id, worker, attempt, 'done' FROM handled_tx
      UNION ALL SELECT 'faults-ordered', event_id, worker, attempt, phase FROM handled_ordered
    )
    SELECT d.id, d.subscription, d.event_id, d.worker, d.attempts, d.finished_at, d.errors,
           EXISTS (SELECT 1 FROM crier.events e WHERE e.id = d.event_id) AS event_in_log,
           (SELECT json_agg(json_build_object('worker', r.worker, 'attempt', r.attempt, 'phase', r.phase))
              FROM recorded r WHERE r.subscription = d.subscription AND r.event_id = d.event_id) AS handlings
    FROM crier.deliveries d
    WHERE d.state = 'done' AND NOT EXISTS (
      SELECT 1 FROM recorded r WHERE r.subscription = d.subscription AND r.event_id = d.event_id
        AND r.worker = d.worker AND r.attempt = d.attempts AND r.phase = 'done')
    LIMIT 5`;
  return rows.map((r) => JSON.stringify(r)).join('\n');
}

/** For a failed run: each event the transactional subscription recorded twice, with its delivery's history. */
export async function txDuplicateDetails(sql: postgres.Sql): Promise<string> {
  const rows = await sql`
    SELECT x.event_id, json_agg(json_build_object('worker', x.worker, 'attempt', x.attempt, 'at', x.at) ORDER BY x.at) AS handlings,
           d.state, d.worker, d.attempts, d.errors
    FROM handled_tx x LEFT JOIN crier.deliveries d ON d.event_id = x.event_id AND d.subscription = 'faults-tx'
    WHERE x.event_id IN (SELECT event_id FROM handled_tx GROUP BY event_id HAVING count(*) > 1)
    GROUP BY x.event_id, d.id LIMIT 5`;
  return rows.map((r) => JSON.stringify(r)).join('\n');
}
