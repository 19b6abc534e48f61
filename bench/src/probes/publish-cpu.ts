// Probe: CPU per published event, server side (the publishing backends' user+system time, read from
// /proc, so the server must run on this machine) and client side, for variants of crier's schema
// side by side; rounds alternate. CPU time is steadier than events/s on a shared machine.
//   node --import tsx bench/src/probes/publish-cpu.ts [N] [rounds] [eventsPerTx] [variant...]
// A variant is `crier` (the migrations as they are), `raw` (the raw baseline's bare insert), a SQL
// file run after migrating, or `<migration file>#<function>`: that migration's definition of
// crier.<function> (and its ALTER FUNCTIONs) run after migrating, e.g. the fan-out trigger as an
// earlier migration left it (the migrations before 0.1.0 are in git history, squashed since):
//   git show 83a2b9e:db/migrations/0007_route_cache_without_waits.sql > /tmp/0007.sql
//   node --import tsx bench/src/probes/publish-cpu.ts 3000 4 1 crier /tmp/0007.sql#fan_out
import { readFileSync } from 'node:fs';
import postgres from 'postgres';
import { createCrier } from '../../../src/index.ts';
import { schemaSql } from '../adapters/raw.ts';
import { createDatabase, dropDatabase, sharedServerUrl } from '../database.ts';
import { makePayload } from '../payload.ts';
import { inFlight } from '../scenarios/scenario.ts';

const count = Number(process.argv[2] ?? 2000);
const rounds = Number(process.argv[3] ?? 4);
const perTx = Number(process.argv[4] ?? 1);
const variants = process.argv.length > 5 ? process.argv.slice(5) : ['crier', 'raw'];
const crier = createCrier();
const ticksPerSecond = 100; // Linux USER_HZ

/** CPU ticks used so far by every backend connected to this database. */
async function serverTicks(sql: postgres.Sql): Promise<number> {
  const backends = await sql<{ pid: number }[]>`SELECT pid FROM pg_stat_activity WHERE datname = current_database()`;
  let ticks = 0;
  for (const { pid } of backends) {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    ticks += Number(fields[11]) + Number(fields[12]); // utime, stime
  }
  return ticks;
}

/** A SQL file, or the statements of a migration that (re)define one crier function. */
function variantSql(variant: string): string {
  const [file, fn] = variant.split('#');
  const text = readFileSync(file!, 'utf8');
  if (!fn) return text;
  const mentions = new RegExp(`(CREATE OR REPLACE|CREATE|ALTER) FUNCTION crier\\.${fn}\\(`);
  const statements = text.split('--> statement-breakpoint').filter((statement) => mentions.test(statement));
  if (statements.length === 0) throw new Error(`${file} does not define crier.${fn}`);
  return statements.join(';\n');
}

interface Setup { variant: string; url: string; sql: postgres.Sql; publish: (i: number) => Promise<void> }

async function setUp(variant: string, index: number): Promise<Setup> {
  const url = await createDatabase(sharedServerUrl, `probe_cpu_${index}`);
  const sql = postgres(url, { max: 8, onnotice: () => {} });
  const payloads = (i: number) => Array.from({ length: perTx }, (_, j) => makePayload(i * perTx + j));
  if (variant === 'raw') {
    await sql.unsafe(schemaSql(false));
    const publish = async (i: number) => {
      await sql`INSERT INTO raw_jobs (queue, payload) SELECT 'q0', p FROM jsonb_array_elements(${JSON.stringify(payloads(i))}::text::jsonb) p`;
    };
    return { variant, url, sql, publish };
  }
  await crier.migrate(url);
  await sql`INSERT INTO crier.subscriptions (name, topics) VALUES ('q0', '{bench.event}')`;
  if (variant !== 'crier') await sql.unsafe(variantSql(variant));
  const publish = async (i: number) => {
    if (perTx === 1) await crier.publish(sql, 'bench.event', makePayload(i));
    else await crier.publishMany(sql, payloads(i).map((payload) => ({ topic: 'bench.event', payload })));
  };
  return { variant, url, sql, publish };
}

const setups: Setup[] = [];
const figures = new Map<string, { server: number[]; client: number[]; rate: number[] }>();
try {
  for (const [i, variant] of variants.entries()) setups.push(await setUp(variant, i));
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < setups.length; k++) {
      const { variant, sql, publish } = setups[(k + round) % setups.length]!;
      await inFlight(100, 8, publish);
      const server0 = await serverTicks(sql);
      const client0 = process.cpuUsage();
      const startedAt = performance.now();
      await inFlight(count, 8, publish, 100);
      const seconds = (performance.now() - startedAt) / 1000;
      const client = process.cpuUsage(client0);
      const server = await serverTicks(sql);
      const events = count * perTx;
      const f = figures.get(variant) ?? { server: [], client: [], rate: [] };
      f.server.push((((server - server0) / ticksPerSecond) * 1e6) / events);
      f.client.push((client.user + client.system) / events);
      f.rate.push(events / seconds);
      figures.set(variant, f);
    }
  }
} finally {
  for (const { sql, url } of setups) {
    await sql.end();
    await dropDatabase(url);
  }
}
const range = (xs: number[], digits: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return `${s[Math.floor(s.length / 2)]!.toFixed(digits)} (${s[0]!.toFixed(digits)}–${s.at(-1)!.toFixed(digits)})`;
};
console.log(`${count} x ${perTx} event(s) per transaction, 8 in flight, no worker; median (min–max) of ${rounds} rounds`);
for (const [variant, f] of figures) {
  console.log(`${variant.padEnd(24)} server ${range(f.server, 1)} µs/event, client ${range(f.client, 1)} µs/event, ${range(f.rate, 0)} events/s`);
}
