// Probe: what Postgres spends per delivery on the worker's side, and would another storage of
// deliveries make it cheaper? One connection runs a claim cycle, carrying the previous batch's acks,
// until N deliveries are done, no worker process; server CPU is read from /proc (the server must run
// on this machine), WAL from the server's LSN (run it on a quiet server). Variants, rounds
// alternating:
//   crier            crier.claim as migrated
//   crier-worker     the statement crier's worker sends (src/worker/protocol.ts: crier.claim plus
//                    each event's version and the columns a handler's event is made of)
//   crier-no-event   the same without deliveries_event_idx
//   split            live work in its own table (pending and running; the same columns and claim
//                    indexes), finished deliveries moved by the ack into an append-only history
//                    (btree on id and event_id): one statement deletes the acked rows, inserts them
//                    into the history, claims the next batch and reads the events
//   split-no-history the same statement without the history insert (the ack only deletes)
//   raw              bench/src/adapters/raw.ts's ack-and-claim (delete on ack)
//   node --import tsx bench/src/probes/storage-variants.ts [N] [batch] [rounds] [variants]
import { readFileSync } from 'node:fs';
import postgres from 'postgres';
import { createCrier } from '../../../src/index.ts';
import { Protocol } from '../../../src/worker/protocol.ts';
import { ackAndClaim, schemaSql } from '../adapters/raw.ts';
import { createDatabase, dropDatabase, sharedServerUrl } from '../database.ts';
import { makePayload } from '../payload.ts';

const count = Number(process.argv[2] ?? 50_000);
const batch = Number(process.argv[3] ?? 500);
const rounds = Number(process.argv[4] ?? 3);
const variants = (process.argv[5] ?? 'crier,crier-no-event,split,split-no-history,raw').split(',');

const crierCycle = `SELECT c.delivery_id::text AS id, c.attempt, c.payload FROM crier.claim('s', 'probe', $1, $2::bigint[], $3::int[]) c`;

const splitTables = `
CREATE TABLE crier.live (
  id bigint PRIMARY KEY, event_id bigint NOT NULL, subscription text NOT NULL, state text NOT NULL DEFAULT 'pending',
  attempts int NOT NULL DEFAULT 0, available_at timestamptz NOT NULL DEFAULT now(), worker text, locked_until timestamptz,
  last_error text, last_error_stack text, errors jsonb NOT NULL DEFAULT '[]', created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz, updated_at timestamptz NOT NULL DEFAULT now(), ordering_key text);
CREATE INDEX live_pending ON crier.live (subscription, available_at, id) WHERE state = 'pending';
CREATE INDEX live_lease ON crier.live (locked_until) WHERE locked_until IS NOT NULL;
CREATE TABLE crier.history (
  id bigint NOT NULL, event_id bigint NOT NULL, subscription text NOT NULL, state text NOT NULL,
  attempts int NOT NULL, available_at timestamptz NOT NULL, worker text, last_error text, last_error_stack text,
  errors jsonb NOT NULL, created_at timestamptz NOT NULL, started_at timestamptz, finished_at timestamptz NOT NULL,
  ordering_key text);
CREATE UNIQUE INDEX history_id ON crier.history (id);
CREATE INDEX history_event ON crier.history (event_id);
INSERT INTO crier.live (id, event_id, subscription, available_at, created_at)
  SELECT id, event_id, subscription, available_at, created_at FROM crier.deliveries;
TRUNCATE crier.deliveries;`;

const historyInsert = `, history AS (
  INSERT INTO crier.history (id, event_id, subscription, state, attempts, available_at, worker, last_error,
                             last_error_stack, errors, created_at, started_at, finished_at, ordering_key)
  SELECT id, event_id, subscription, 'done', attempts, available_at, worker, last_error, last_error_stack, errors,
         created_at, started_at, now(), ordering_key FROM acked
)`;
// Arrays rather than joins, as crier.claim does: a join lets the planner hash a scan of the table.
const splitCycle = (withHistory: boolean) => `
WITH acked AS (
  DELETE FROM crier.live d USING unnest($2::bigint[], $3::int[]) a(id, attempt)
  WHERE d.id = a.id AND d.attempts = a.attempt AND d.state = 'running' AND d.worker = 'probe'
  RETURNING d.*
)${withHistory ? historyInsert : ''}, picked AS (
  SELECT id FROM crier.live WHERE subscription = 's' AND state = 'pending' AND available_at <= now()
  ORDER BY available_at, id LIMIT $1 FOR UPDATE SKIP LOCKED
), claimed AS (
  UPDATE crier.live d SET state = 'running', attempts = d.attempts + 1, worker = 'probe',
    locked_until = now() + interval '30 s', started_at = now(), updated_at = now()
  WHERE d.id = ANY(ARRAY(SELECT id FROM picked)) RETURNING d.id, d.attempts, d.event_id
), claimed_events AS (
  SELECT e.id, e.payload FROM crier.events e WHERE e.id = ANY(ARRAY(SELECT c.event_id FROM claimed c))
)
SELECT c.id::text AS id, c.attempts AS attempt, e.payload FROM claimed c JOIN claimed_events e ON e.id = c.event_id`;

type Cycle = (sql: postgres.Sql, acks: { ids: string[]; attempts: number[] }) => Promise<{ id: string; attempt?: number }[]>;
interface Variant { setup: (sql: postgres.Sql, url: string) => Promise<void>; cycle: Cycle }

async function publishToCrier(sql: postgres.Sql, url: string) {
  await createCrier().migrate(url);
  await sql`INSERT INTO crier.subscriptions (name, topics) VALUES ('s', ARRAY['t'])`;
  for (let i = 0; i < count; i += 1000) {
    await createCrier().publishMany(sql, Array.from({ length: Math.min(1000, count - i) }, (_, k) => ({ topic: 't', payload: makePayload(i + k) })));
  }
}
const statement = (text: string, withBatchFirst = true): Cycle => (sql, acks) =>
  sql.unsafe(text, withBatchFirst ? [batch, `{${acks.ids}}`, `{${acks.attempts}}`] : [`{${acks.ids}}`, 'q', batch], { prepare: true }) as never;
const split = (withHistory: boolean): Variant => ({
  async setup(sql, url) {
    await publishToCrier(sql, url);
    await sql.unsafe(splitTables);
  },
  cycle: statement(splitCycle(withHistory)),
});
const all: Record<string, Variant> = {
  crier: { setup: publishToCrier, cycle: statement(crierCycle) },
  'crier-worker': {
    setup: publishToCrier,
    cycle: (sql, acks) =>
      new Protocol(sql, 'crier', 'probe').claim('s', batch, acks) as never,
  },
  'crier-no-event': {
    async setup(sql, url) {
      await publishToCrier(sql, url);
      await sql`DROP INDEX crier.deliveries_event_idx`;
    },
    cycle: statement(crierCycle),
  },
  split: split(true),
  'split-no-history': split(false),
  raw: {
    async setup(sql) {
      await sql.unsafe(schemaSql(false));
      for (let i = 0; i < count; i += 1000) {
        const payloads = Array.from({ length: Math.min(1000, count - i) }, (_, k) => makePayload(i + k));
        await sql`INSERT INTO raw_jobs (queue, payload) SELECT 'q', p FROM jsonb_array_elements(${JSON.stringify(payloads)}::text::jsonb) p`;
      }
    },
    cycle: statement(ackAndClaim, false),
  },
};

const results: Record<string, { cpuUs: number[]; walBytes: number[] }> = {};
for (let round = 0; round < rounds; round++) {
  for (const name of variants) {
    const variant = all[name];
    if (!variant) throw new Error(`unknown variant ${name}; known: ${Object.keys(all).join(', ')}`);
    const url = await createDatabase(sharedServerUrl, `probe_storage_${name.replace(/-/g, '_')}`);
    const sql = postgres(url, { max: 1, onnotice: () => {}, fetch_types: false });
    try {
      await variant.setup(sql, url);
      await sql`VACUUM ANALYZE`;
      const [{ pid }] = (await sql`SELECT pg_backend_pid() AS pid`) as unknown as [{ pid: number }];
      const cpuMs = () => {
        const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
        return (Number(fields[11]) + Number(fields[12])) * 10; // utime + stime, in 10 ms ticks
      };
      const lsn = async () => Number((await sql`SELECT pg_current_wal_insert_lsn() - '0/0' AS b`)[0]!.b);
      const [cpu0, wal0] = [cpuMs(), await lsn()];
      let acks = { ids: [] as string[], attempts: [] as number[] };
      let done = 0;
      for (;;) {
        const rows = await variant.cycle(sql, acks);
        acks = { ids: rows.map((r: any) => r.id ?? r.deliveryId), attempts: rows.map((r) => r.attempt ?? 0) };
        done += rows.length;
        if (rows.length === 0) break;
      }
      const [cpu, wal] = [cpuMs() - cpu0, (await lsn()) - wal0];
      if (done !== count) throw new Error(`${name}: ${done} of ${count} done`);
      const r = (results[name] ??= { cpuUs: [], walBytes: [] });
      r.cpuUs.push((cpu * 1000) / count);
      r.walBytes.push(wal / count);
    } finally {
      await sql.end();
      await dropDatabase(url);
    }
  }
}
const list = (xs: number[], digits: number) => xs.map((x) => x.toFixed(digits)).join(', ');
console.log(`claim cycle, ${count} deliveries in batches of ${batch}, ${rounds} rounds (each round's figure):`);
for (const [name, r] of Object.entries(results)) {
  console.log(`  ${name.padEnd(17)} server CPU µs/delivery ${list(r.cpuUs, 1)}; WAL bytes/delivery ${list(r.walBytes, 0)}`);
}
