// The hand-written baseline that marks what Postgres allows: a minimal outbox on postgres.js.
// Insert (plus a statement trigger that NOTIFYs, unless `notify` is off), SKIP LOCKED claims of up
// to 500 rows by 2 loops, the ack of a batch fused into the next claim, delete on ack (no history).
import postgres from 'postgres';
import type { Adapter, Layout, Tuning } from '../adapter.ts';

export const schemaSql = (notify: boolean) => `
CREATE TABLE raw_jobs (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  queue text NOT NULL,
  payload jsonb NOT NULL,
  locked_at timestamptz
);
CREATE INDEX raw_jobs_pending ON raw_jobs (queue, id) WHERE locked_at IS NULL;
${notify ? `
CREATE FUNCTION raw_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_notify('raw_jobs', ''); RETURN NULL; END $$;
CREATE TRIGGER raw_jobs_notify AFTER INSERT ON raw_jobs FOR EACH STATEMENT EXECUTE FUNCTION raw_notify();` : ''}`;

// Deletes the previous batch (the ack) and claims the next one in one round trip.
export const ackAndClaim = `
WITH acked AS (DELETE FROM raw_jobs WHERE id = ANY($1::bigint[])),
picked AS (
  SELECT id FROM raw_jobs WHERE queue = $2 AND locked_at IS NULL ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED
)
UPDATE raw_jobs j SET locked_at = now() FROM picked WHERE j.id = picked.id
RETURNING j.id, j.payload`;

export function rawAdapter(notify: boolean): Adapter {
  return {
    name: notify ? 'raw' : 'raw-nonotify',
    fanOut: true,

    async install(url) {
      const sql = postgres(url, { max: 1, onnotice: () => {} });
      try {
        await sql.unsafe(schemaSql(notify));
      } finally {
        await sql.end();
      }
    },

    async publisher(url, layout: Layout, connections) {
      const sql = postgres(url, { max: connections, onnotice: () => {} });
      // With per-queue topics an event goes to one queue; otherwise to every queue (fan-out).
      const queuesOf = (queue: number | undefined) => (layout.topics ? [layout.queues[queue ?? 0]!] : layout.queues);
      return {
        one: async (payload, queue) => {
          const queues = queuesOf(queue);
          if (queues.length === 1) {
            await sql`INSERT INTO raw_jobs (queue, payload) VALUES (${queues[0]!}, ${sql.json(payload as any)})`;
          } else {
            await sql`INSERT INTO raw_jobs (queue, payload) SELECT q, ${sql.json(payload as any)} FROM unnest(${queues}::text[]) q`;
          }
        },
        many: async (payloads, queue) => {
          const queues = queuesOf(queue);
          await sql`
            INSERT INTO raw_jobs (queue, payload)
            SELECT q, p FROM jsonb_array_elements(${JSON.stringify(payloads)}::text::jsonb) p, unnest(${queues}::text[]) q`;
        },
        close: () => sql.end({ timeout: 5 }),
      };
    },

    async worker(url, layout, handle, tuning: Tuning) {
      const loopsPerQueue = Number(tuning.loops ?? 2);
      const batch = Number(tuning.batch ?? 500);
      const idlePollMs = Number(tuning.pollMs ?? (notify ? 2000 : 50));
      const sql = postgres(url, { max: layout.queues.length * loopsPerQueue + 1, onnotice: () => {} });
      let stopping = false;
      const sleepers = new Set<() => void>();
      let wakeups = 0; // a NOTIFY during a claim must not be lost: the loop then claims again
      const wakeAll = () => {
        wakeups++;
        for (const wake of sleepers) wake();
        sleepers.clear();
      };
      const listening = notify ? await sql.listen('raw_jobs', wakeAll) : undefined;
      const loop = async (queue: string) => {
        let acks: string[] = [];
        while (!stopping) {
          const seen = wakeups;
          const rows = await sql.unsafe(ackAndClaim, [`{${acks.join(',')}}`, queue, batch], { prepare: true });
          acks = [];
          for (const row of rows) {
            handle(row.payload);
            acks.push(row.id as string);
          }
          if (rows.length === 0 && seen === wakeups) {
            await new Promise<void>((resolve) => {
              const timer = setTimeout(done, idlePollMs);
              function done() {
                clearTimeout(timer);
                sleepers.delete(done);
                resolve();
              }
              sleepers.add(done);
            });
          }
        }
        if (acks.length > 0) await sql`DELETE FROM raw_jobs WHERE id = ANY(${`{${acks.join(',')}}`}::bigint[])`;
      };
      const loops = layout.queues.flatMap((queue) => Array.from({ length: loopsPerQueue }, () => loop(queue)));
      return {
        async stop() {
          stopping = true;
          wakeAll();
          await Promise.all(loops);
          await listening?.unlisten();
          await sql.end({ timeout: 5 });
        },
      };
    },

    async remaining(url) {
      const sql = postgres(url, { max: 1, onnotice: () => {} });
      try {
        const [row] = await sql`SELECT count(*)::int AS n FROM raw_jobs`;
        return row!.n as number;
      } finally {
        await sql.end();
      }
    },
  };
}

export const adapter = rawAdapter(true);
