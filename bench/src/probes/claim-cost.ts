// Probe: what Postgres spends per delivery on the worker's side, without any worker process: one
// connection runs crier's claim cycle (crier.claim carrying the previous batch's acks) until N
// deliveries are done, and the same for raw's ack-and-claim statement (bench/src/adapters/raw.ts) (delete on ack), rounds
// alternating. Reports, per delivery: the server backend's CPU time (read from /proc, so the
// server must run on this machine) and WAL bytes (server-wide LSN difference: run it on a quiet
// server).
//   node --import tsx bench/src/probes/claim-cost.ts [N] [batch] [rounds]
import { readFileSync } from 'node:fs';
import postgres from 'postgres';
import { createCrier } from '../../../src/index.ts';
import { ackAndClaim, schemaSql } from '../adapters/raw.ts';
import { createDatabase, dropDatabase, sharedServerUrl } from '../database.ts';
import { makePayload } from '../payload.ts';

const count = Number(process.argv[2] ?? 50_000);
const batch = Number(process.argv[3] ?? 500);
const rounds = Number(process.argv[4] ?? 3);

const crierCycle = `
  SELECT c.delivery_id::text AS id, c.attempt, c.payload FROM crier.claim('s', 'probe', $1, $2::bigint[], $3::int[]) c`;

type Cycle = (sql: postgres.Sql, acks: { ids: string[]; attempts: number[] }) => Promise<{ id: string; attempt?: number }[]>;
const contestants: Record<'crier' | 'raw', { setup: (sql: postgres.Sql, url: string) => Promise<void>; cycle: Cycle }> = {
  crier: {
    async setup(sql, url) {
      const crier = createCrier();
      await crier.migrate(url);
      await sql`INSERT INTO crier.subscriptions (name, topics) VALUES ('s', ARRAY['t'])`;
      for (let i = 0; i < count; i += 1000) {
        await crier.publishMany(sql, Array.from({ length: Math.min(1000, count - i) }, (_, k) => ({ topic: 't', payload: makePayload(i + k) })));
      }
    },
    cycle: (sql, acks) => sql.unsafe(crierCycle, [batch, `{${acks.ids}}`, `{${acks.attempts}}`], { prepare: true }) as never,
  },
  raw: {
    async setup(sql) {
      await sql.unsafe(schemaSql(false));
      for (let i = 0; i < count; i += 1000) {
        const payloads = Array.from({ length: Math.min(1000, count - i) }, (_, k) => makePayload(i + k));
        await sql`INSERT INTO raw_jobs (queue, payload) SELECT 'q', p FROM jsonb_array_elements(${JSON.stringify(payloads)}::text::jsonb) p`;
      }
    },
    cycle: (sql, acks) => sql.unsafe(ackAndClaim, [`{${acks.ids}}`, 'q', batch], { prepare: true }) as never,
  },
};

const results: Record<string, { cpuUs: number[]; walBytes: number[]; perSecond: number[] }> = {};
for (let round = 0; round < rounds; round++) {
  for (const [name, contestant] of Object.entries(contestants)) {
    const url = await createDatabase(sharedServerUrl, `probe_claim_${name}`);
    const sql = postgres(url, { max: 1, onnotice: () => {}, fetch_types: false });
    try {
      await contestant.setup(sql, url);
      await sql`VACUUM ANALYZE`;
      const [{ pid }] = (await sql`SELECT pg_backend_pid() AS pid`) as unknown as [{ pid: number }];
      const cpuMs = () => {
        const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
        return (Number(fields[11]) + Number(fields[12])) * 10; // utime + stime, in 10 ms ticks
      };
      const lsn = async () => Number((await sql`SELECT pg_current_wal_insert_lsn() - '0/0' AS b`)[0]!.b);
      const [cpu0, wal0, t0] = [cpuMs(), await lsn(), performance.now()];
      let acks = { ids: [] as string[], attempts: [] as number[] };
      let done = 0;
      for (;;) {
        const rows = await contestant.cycle(sql, acks);
        acks = { ids: rows.map((r) => r.id), attempts: rows.map((r) => r.attempt ?? 0) };
        done += rows.length;
        if (rows.length === 0) break;
      }
      const [seconds, cpu, wal] = [(performance.now() - t0) / 1000, cpuMs() - cpu0, (await lsn()) - wal0];
      if (done !== count) throw new Error(`${name}: ${done} of ${count} done`);
      const r = (results[name] ??= { cpuUs: [], walBytes: [], perSecond: [] });
      r.cpuUs.push((cpu * 1000) / count);
      r.walBytes.push(wal / count);
      r.perSecond.push(count / seconds);
    } finally {
      await sql.end();
      await dropDatabase(url);
    }
  }
}
const range = (xs: number[], digits = 1) => `${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}`;
console.log(`claim cycle, ${count} deliveries in batches of ${batch}, ${rounds} rounds (min–max):`);
for (const [name, r] of Object.entries(results)) {
  console.log(`  ${name.padEnd(6)} server CPU ${range(r.cpuUs)} µs/delivery, WAL ${range(r.walBytes, 0)} bytes/delivery, one connection ${range(r.perSecond, 0)} deliveries/s`);
}
