// The worker's side of the SQL protocol: one named call per step of a delivery's life. The SQL
// itself (claim, complete, fail, extend_leases, release, worker_poll, park, register_worker) lives
// in db/sql (deliveries/claim.sql, deliveries/ack.sql, deliveries/leases.sql, wake.sql, workers.sql), reviewed as SQL and
// callable by any language.
import type postgres from 'postgres';
import { denseRows } from '../dense-rows.ts';
import { inSchema } from '../schema-name.ts';
import { pgArray } from '../sql-helpers.ts';
import { ClaimBatcher, type ClaimRequest } from './claim-batch.ts';
import { ReplaceableClient } from './client.ts';

export interface ClaimedDelivery {
  deliveryId: string;
  attempt: number;
  eventId: string;
  eventUuid: string;
  topic: string;
  key: string | null;
  payload: unknown;
  headers: Record<string, unknown>;
  /** The payload's schema version (crier.events.version). */
  version: number;
  createdAt: Date;
}

export interface ClaimOrIdle {
  deliveries: ClaimedDelivery[];
  /** Nothing was claimed and the worker parked (asked to). */
  parked: boolean;
  /** When nothing was claimed: ms until the next pending delivery is due; null when none is pending. */
  nextDueIn: number | null;
  /**
   * A re-check that claimed nothing while other transactions were running (one may be a producer
   * that inserted before the park and will commit unseen, without a NOTIFY): their ids, to pass to
   * the next re-check, soon (as the array's text: the loop only hands it back). null: none was
   * running.
   */
  running: string | null;
}

/** What the worker's poll says about a subscription it parked. */
export interface PolledSubscription {
  name: string;
  /** Its parked row is still there (false: a producer woke it, and the NOTIFY may be lost). */
  parked: boolean;
  /** Ms until its next pending delivery is due (<= 0: due now); null: none pending. */
  nextDueIn: number | null;
}

/** Attempts that finished: deliveryIds[i] at attempts[i]. */
export interface Completions {
  ids: string[];
  attempts: number[];
}

const noCompletions: Completions = { ids: [], attempts: [] };

export interface Failure {
  deliveryId: string;
  attempt: number;
  error: string;
  stack: string | null;
  giveUp: boolean;
  /** Ms before the retry (RetryLater, or the subscription's retry schedule); null: its backoff. */
  delayMs: number | null;
}

/** pgArray for ids (bigints as text) and attempts: nothing to quote, no string per element. */
function pgIntegerArray(values: readonly (string | number)[]): string {
  return `{${values.join(',')}}`;
}

/**
 * postgres.js's result array stays reachable after the query has settled, until a full GC, and
 * kept every claimed row alive through young GCs (27% of what a drain allocated survived one; 2%
 * with this): the rows move to an array of our own and the result is emptied.
 */
function ownRows(rows: postgres.Row[]): ClaimedDelivery[] {
  const claimed = rows.slice() as unknown as ClaimedDelivery[];
  rows.length = 0;
  return claimed;
}

// A claim's transaction (its claims and the acks it carries) commits without waiting for the WAL
// flush: after a Postgres crash the last fraction of a second of them may be lost, and those
// deliveries come back through their lease, handled again, as any delivery in flight at a crash
// is. Transactional handlers' acks commit with the handler's transaction, never through this.
const asyncCommit = `(SELECT set_config('synchronous_commit', 'off', true)) AS async_commit`;

// A ClaimedDelivery, from a row `c` of crier.claim.
const claimedColumns = `c.delivery_id::text AS "deliveryId", c.attempt, c.event_id::text AS "eventId",
       c.event_uuid::text AS "eventUuid", c.topic, c.key, c.payload,
       coalesce(c.headers, '{}') AS headers, c.created_at AS "createdAt",
       coalesce((SELECT e.version FROM crier.events e WHERE e.id = c.event_id), 1) AS version`;

const statements = {
  // The event's version is read beside crier.claim rather than added to its result, so that the
  // claim function keeps one signature whoever redefines it (one primary-key lookup per row).
  // Rows come back as ClaimedDelivery objects as they are (not copied): a worker holds hundreds.
  claim: `SELECT ${claimedColumns}
          FROM ${asyncCommit}, crier.claim($1, $2, $3, $4::text::bigint[], $5::text::integer[]) c`,
  // The same claim, and when it comes back empty: park ($6) and say when the next delivery is due
  // (crier.claim_or_idle), so an idle cycle costs no extra round trips. That case is one row
  // without a delivery.
  claimOrIdle: `SELECT ${claimedColumns}, c.next_due_in AS "nextDueIn", c.running::text
                FROM ${asyncCommit}, crier.claim_or_idle($1, $2, $3, $4::text::bigint[], $5::text::integer[], $6::boolean, $7::text::bigint[]) c`,
  // Requests of several subscriptions that came together (claim-batch.ts): each row says whose.
  claimMany: `SELECT c.request, ${claimedColumns}, c.next_due_in AS "nextDueIn", c.running::text
              FROM ${asyncCommit}, crier.claim_many($1, $2::text::text[], $3::text::integer[], $4::text::boolean[],
                                                    $5::text::text[], $6::text::bigint[], $7::text::integer[]) c`,
  complete: `SELECT id::text FROM crier.complete($1, $2::text::bigint[], $3::text::integer[]) AS id`,
  // due_in: ms until the retry falls due, by the database's clock (now() is the time crier.fail
  // counted its backoff from), so a worker's own clock may be off without making it late.
  fail: `SELECT delivery_id::text, state, available_at, extract(epoch FROM available_at - now()) * 1000 AS due_in
         FROM crier.fail($1, $2::text::bigint[], $3::text::integer[], $4::text::text[], $5::text::text[], $6::text::boolean[], $7::text::integer[])`,
  extendLeases: `SELECT id::text FROM crier.extend_leases($1, $2::text::bigint[], $3::text::integer[]) AS id`,
  release: `SELECT id::text FROM crier.release($1, $2::text::bigint[], $3::text::integer[]) AS id`,
  // The worker's poll: rescue, and the state of its parked subscriptions (crier.worker_poll).
  poll: `SELECT rescued, subscription, parked, next_due_in AS "nextDueIn" FROM crier.worker_poll($1, $2::text::text[])`,
  unpark: `SELECT crier.unpark($1, $2::text::text[])`,
  register: `SELECT crier.register_worker($1, $2, $3, $4, $5::text::text[], $6)`,
  stopped: `SELECT crier.worker_stopped($1)`,
} as const;

export class Protocol {
  private readonly text: Record<keyof typeof statements, string>;
  /** Every call goes through it: under the worker's deadline, on a client replaced when it fails. */
  readonly client: ReplaceableClient;
  private readonly claims: ClaimBatcher<postgres.Row[]>;

  /** `claimsInFlight`: claims on their way at once before the next ones wait and go together (claim-batch.ts). */
  constructor(
    sql: postgres.Sql<any> | ReplaceableClient,
    readonly schema: string,
    readonly workerId: string,
    claimsInFlight = Infinity,
  ) {
    this.client = sql instanceof ReplaceableClient ? sql : new ReplaceableClient(sql);
    this.claims = new ClaimBatcher(claimsInFlight, (request) => this.claimAlone(request), (requests) => this.claimTogether(requests));
    this.text = Object.fromEntries(
      Object.entries(statements).map(([name, text]) => [name, inSchema(text, schema)]),
    ) as Record<keyof typeof statements, string>;
  }

  /** The worker's client now (it changes when one is replaced). */
  get sql(): postgres.Sql<any> {
    return this.client.current;
  }

  // Prepared where the client allows it: postgres.js ANDs this `prepare: true` with the client's own
  // option, so a worker client made with `prepare: false` (PgBouncer in transaction mode) sends
  // unnamed statements instead. `tx`: a transactional handler's transaction, which carries its own
  // ack; it runs under the same deadline, but its client is not the worker's to replace from here
  // (the handler's timeout and the next claim on that client see to it).
  private async run(name: keyof typeof statements, params: unknown[], tx?: postgres.TransactionSql<any>) {
    const text = this.text[name];
    const args = params as postgres.ParameterOrJSON<never>[];
    if (tx) return denseRows(await this.client.within(name, tx.unsafe(text, args, { prepare: true })));
    return denseRows(await this.client.run(name, (sql) => sql.unsafe(text, args, { prepare: true })));
  }

  /**
   * Completes `done` (attempts that finished; an ack whose lease was lost is refused silently) and
   * claims up to `limit` deliveries, in one round trip and one transaction.
   */
  async claim(subscription: string, limit: number, done: Completions = noCompletions): Promise<ClaimedDelivery[]> {
    return ownRows(await this.claims.claim({ subscription, limit, done, park: null, running: null }));
  }

  /**
   * claim(), and when nothing is claimed: parks this worker on the subscription if `park`, says in
   * how many ms its next pending delivery is due (null: none pending) and, for a re-check
   * (`park` false), which transactions to wait for (`running`: what the last re-check reported).
   * One round trip.
   */
  async claimOrIdle(subscription: string, limit: number, done: Completions, park: boolean, running: string | null = null): Promise<ClaimOrIdle> {
    const rows = await this.claims.claim({ subscription, limit, done, park, running });
    const first = rows[0];
    if (first === undefined || first.deliveryId !== null) return { deliveries: ownRows(rows), parked: false, nextDueIn: null, running: null };
    const nextDueIn = first.nextDueIn == null ? null : Number(first.nextDueIn);
    return { deliveries: [], parked: park, nextDueIn, running: first.running ?? null };
  }

  /** One claim request, in a round trip of its own: crier.claim, or crier.claim_or_idle. */
  private claimAlone({ subscription, limit, done, park, running }: ClaimRequest): Promise<postgres.Row[]> {
    const common = [subscription, this.workerId, limit, pgIntegerArray(done.ids), pgIntegerArray(done.attempts)];
    return park === null ? this.run('claim', common) : this.run('claimOrIdle', [...common, park, running]);
  }

  /** Requests that came together, in one round trip (crier.claim_many): each one's rows, in order. */
  private async claimTogether(requests: ClaimRequest[]): Promise<postgres.Row[][]> {
    const rows = await this.run('claimMany', [
      this.workerId,
      pgArray(requests.map((r) => r.subscription)),
      pgIntegerArray(requests.map((r) => r.limit)),
      pgArray(requests.map((r) => r.park)),
      pgArray(requests.map((r) => r.running)),
      pgIntegerArray(requests.flatMap((r) => r.done.ids)),
      pgIntegerArray(requests.flatMap((r) => r.done.attempts)),
    ]);
    const replies = requests.map((): postgres.Row[] => []);
    for (const row of rows) replies[(row.request as number) - 1]!.push(row);
    rows.length = 0;
    return replies;
  }

  /** Returns the ids that were completed; the others had lost their lease. `tx`: a handler's transaction. */
  async complete(ids: string[], attempts: number[], tx?: postgres.TransactionSql<any>): Promise<Set<string>> {
    const rows = await this.run('complete', [this.workerId, pgIntegerArray(ids), pgIntegerArray(attempts)], tx);
    return new Set(rows.map((r) => r.id as string));
  }

  /** The failures written (the others had lost their lease): retried ('pending', due in `dueInMs`) or 'dead'. */
  async fail(failures: Failure[]): Promise<{ deliveryId: string; state: string; availableAt: Date; dueInMs: number }[]> {
    const rows = await this.run('fail', [
      this.workerId,
      pgArray(failures.map((f) => f.deliveryId)),
      pgArray(failures.map((f) => f.attempt)),
      pgArray(failures.map((f) => f.error)),
      pgArray(failures.map((f) => f.stack)),
      pgArray(failures.map((f) => f.giveUp)),
      pgArray(failures.map((f) => f.delayMs)),
    ]);
    return rows.map((r) => ({ deliveryId: r.delivery_id, state: r.state, availableAt: r.available_at, dueInMs: Number(r.due_in) }));
  }

  async extendLeases(ids: string[], attempts: number[]): Promise<Set<string>> {
    const rows = await this.run('extendLeases', [this.workerId, pgIntegerArray(ids), pgIntegerArray(attempts)]);
    return new Set(rows.map((r) => r.id as string));
  }

  async release(ids: string[], attempts: number[]): Promise<Set<string>> {
    const rows = await this.run('release', [this.workerId, pgIntegerArray(ids), pgIntegerArray(attempts)]);
    return new Set(rows.map((r) => r.id as string));
  }

  /**
   * The worker's periodic round trip: rescues expired leases (anyone's: how many) and, for each of
   * `parked` (subscriptions this worker parked and sleeps on), whether it is still parked and in
   * how many ms its next pending delivery is due (null: none pending).
   */
  async poll(parked: string[]): Promise<{ rescued: number; parked: PolledSubscription[] }> {
    const rows = await this.run('poll', [this.workerId, pgArray(parked)]);
    return {
      rescued: Number(rows[0]?.rescued ?? 0),
      parked: rows
        .filter((r) => r.subscription !== null)
        .map((r) => ({ name: r.subscription as string, parked: r.parked as boolean, nextDueIn: r.nextDueIn == null ? null : Number(r.nextDueIn) })),
    };
  }

  /** Registers this worker in crier.registered_workers (seen by crier.workers and `crier workers`). */
  async register(worker: { host: string; pid: number; version: string; subscriptions: string[]; heartbeatMs: number }): Promise<void> {
    await this.run('register', [this.workerId, worker.host, worker.pid, worker.version, pgArray(worker.subscriptions), Math.round(worker.heartbeatMs)]);
  }

  /** A clean stop: this worker's row says stopped. */
  async stopped(): Promise<void> {
    await this.run('stopped', [this.workerId]);
  }

  async unpark(subscriptions: string[]): Promise<void> {
    await this.run('unpark', [this.workerId, pgArray(subscriptions)]);
  }
}
