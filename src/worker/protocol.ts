// The worker's side of the SQL protocol: one named call per step of a delivery's life. The SQL
// itself (claim, complete, fail, extend_leases, release, rescue_expired, park) lives in
// db/migrations/0001_sql_api.sql, reviewed as SQL and callable by any language.
import type postgres from 'postgres';
import { inSchema } from '../schema-name.ts';

export interface ClaimedDelivery {
  deliveryId: string;
  attempt: number;
  lockedUntil: Date;
  eventId: string;
  eventUuid: string;
  topic: string;
  key: string | null;
  payload: unknown;
  headers: Record<string, unknown>;
  createdAt: Date;
}

export interface Failure {
  deliveryId: string;
  attempt: number;
  error: string;
  stack: string | null;
  giveUp: boolean;
}

const statements = {
  claim: `SELECT delivery_id::text, attempt, locked_until, event_id::text, event_uuid::text, topic, key,
                 payload, headers, created_at
          FROM crier.claim($1, $2, $3)`,
  nextDue: `SELECT crier.next_due($1) AS due`,
  complete: `SELECT id::text FROM crier.complete($1, $2::bigint[], $3::integer[]) AS id`,
  fail: `SELECT delivery_id::text, state, available_at
         FROM crier.fail($1, $2::bigint[], $3::integer[], $4::text[], $5::text[], $6::boolean[])`,
  extendLeases: `SELECT id::text FROM crier.extend_leases($1, $2::bigint[], $3::integer[]) AS id`,
  release: `SELECT id::text FROM crier.release($1, $2::bigint[], $3::integer[]) AS id`,
  rescueExpired: `SELECT crier.rescue_expired() AS rescued`,
  park: `SELECT crier.park($1, $2::text[])`,
  unpark: `SELECT crier.unpark($1, $2::text[])`,
} as const;

export class Protocol {
  private readonly text: Record<keyof typeof statements, string>;

  constructor(
    private readonly sql: postgres.Sql<any>,
    schema: string,
    readonly workerId: string,
  ) {
    this.text = Object.fromEntries(
      Object.entries(statements).map(([name, text]) => [name, inSchema(text, schema)]),
    ) as Record<keyof typeof statements, string>;
  }

  private run(name: keyof typeof statements, params: unknown[]) {
    return this.sql.unsafe(this.text[name], params as postgres.ParameterOrJSON<never>[], { prepare: true });
  }

  async claim(subscription: string, limit: number): Promise<ClaimedDelivery[]> {
    const rows = await this.run('claim', [subscription, this.workerId, limit]);
    return rows.map((r) => ({
      deliveryId: r.delivery_id,
      attempt: r.attempt,
      lockedUntil: r.locked_until,
      eventId: r.event_id,
      eventUuid: r.event_uuid,
      topic: r.topic,
      key: r.key,
      payload: r.payload,
      headers: r.headers ?? {},
      createdAt: r.created_at,
    }));
  }

  async nextDue(subscription: string): Promise<Date | null> {
    const [row] = await this.run('nextDue', [subscription]);
    return (row?.due as Date | null) ?? null;
  }

  /** Returns the ids that were completed; the others had lost their lease. */
  async complete(ids: string[], attempts: number[]): Promise<Set<string>> {
    const rows = await this.run('complete', [this.workerId, ids, attempts]);
    return new Set(rows.map((r) => r.id as string));
  }

  async fail(failures: Failure[]): Promise<{ deliveryId: string; state: string; availableAt: Date }[]> {
    const rows = await this.run('fail', [
      this.workerId,
      failures.map((f) => f.deliveryId),
      failures.map((f) => f.attempt),
      failures.map((f) => f.error),
      failures.map((f) => f.stack),
      failures.map((f) => f.giveUp),
    ]);
    return rows.map((r) => ({ deliveryId: r.delivery_id, state: r.state, availableAt: r.available_at }));
  }

  async extendLeases(ids: string[], attempts: number[]): Promise<Set<string>> {
    const rows = await this.run('extendLeases', [this.workerId, ids, attempts]);
    return new Set(rows.map((r) => r.id as string));
  }

  async release(ids: string[], attempts: number[]): Promise<Set<string>> {
    const rows = await this.run('release', [this.workerId, ids, attempts]);
    return new Set(rows.map((r) => r.id as string));
  }

  async rescueExpired(): Promise<number> {
    const [row] = await this.run('rescueExpired', []);
    return Number(row?.rescued ?? 0);
  }

  async park(subscriptions: string[]): Promise<void> {
    await this.run('park', [this.workerId, subscriptions]);
  }

  async unpark(subscriptions: string[]): Promise<void> {
    await this.run('unpark', [this.workerId, subscriptions]);
  }
}
