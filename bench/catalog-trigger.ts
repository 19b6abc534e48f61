// What the catalog's SQL-side validation costs publishers.
//   npx tsx bench/catalog-trigger.ts            (DATABASE_URL names the server; a scratch database is made and dropped)
//   ROUNDS=25 MODES=no-trigger,all-off npx tsx bench/catalog-trigger.ts
//
// Publishes server-side (a DO block, so the network is not measured), inside a transaction that is
// rolled back (so every round starts from the same table size), in three modes, interleaved:
//   no-trigger   the events_catalog_check trigger dropped: crier as if issue 5 did not exist
//   all-off      a catalog registered, validation off for every topic (the trigger is disabled)
//   other-on     validation on for another topic only (the trigger runs, checks no row)
//   on           validation on for the published topic (a 3-field schema with a pattern)
// for single-row crier.publish() statements and for 1,000-row INSERT statements. Prints medians.
import postgres from 'postgres';
import { z } from 'zod';
import { defineCatalog, migrate, registerCatalog } from '../src/index.ts';

const server = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const name = `crier_bench_catalog_${process.pid}`;
const url = new URL(server);
url.pathname = `/${name}`;

const catalog = defineCatalog({
  'order.created': {
    versions: [
      z.object({
        orderId: z.string().min(1),
        amountCents: z.int().nonnegative(),
        currency: z.string().regex(/^[A-Z]{3}$/),
      }),
    ],
  },
  'order.shipped': { versions: [z.object({ orderId: z.string(), carrier: z.enum(['ups', 'dhl']) })] },
});

const payload = `'{"orderId": "o-1", "amountCents": 1250, "currency": "EUR"}'::jsonb`;
const workloads = {
  // One statement per event, as a request handler publishes.
  single: { events: 5000, sql: `DO $$ BEGIN FOR i IN 1..5000 LOOP PERFORM crier.publish('order.created', ${payload}); END LOOP; END $$` },
  // 1,000 events per statement, as publishMany does.
  batch: {
    events: 20_000,
    sql: `DO $$ BEGIN FOR i IN 1..20 LOOP
            INSERT INTO crier.events (topic, payload) SELECT 'order.created', ${payload} FROM generate_series(1, 1000);
          END LOOP; END $$`,
  },
};
type Mode = 'no-trigger' | 'all-off' | 'other-on' | 'on';
const modes = (process.env.MODES?.split(',') ?? ['no-trigger', 'all-off', 'other-on', 'on']) as Mode[];
const rounds = Number(process.env.ROUNDS ?? 7);

class Elapsed {
  constructor(readonly ms: number) {}
}

const admin = postgres(server, { max: 1, onnotice: () => {} });
await admin.unsafe(`CREATE DATABASE "${name}"`);
const sql = postgres(url.toString(), { max: 1, onnotice: () => {} });
try {
  await migrate({ connection: url.toString() });
  await registerCatalog(sql, catalog);
  // A subscription, so that fan-out does its usual work.
  await sql`INSERT INTO crier.subscriptions (name, topics) VALUES ('billing', '{order.#}')`;

  const timings: Record<string, number[]> = {};
  for (let round = 0; round < rounds; round++) {
    for (const [workload, { sql: text }] of Object.entries(workloads)) {
      // A fresh order each round, so that drift on a shared machine does not favour one mode.
      for (const mode of [...modes].sort(() => Math.random() - 0.5)) {
        const ms = await sql.begin(async (tx) => {
          if (mode === 'no-trigger') await tx`DROP TRIGGER events_catalog_check ON crier.events`;
          await tx`UPDATE crier.catalog_topics SET validate = ${mode === 'on'} WHERE topic = 'order.created'`;
          await tx`UPDATE crier.catalog_topics SET validate = ${mode === 'other-on'} WHERE topic = 'order.shipped'`;
          const start = process.hrtime.bigint();
          await tx.unsafe(text);
          // Thrown to roll back: every round starts from the same table size.
          throw new Elapsed(Number(process.hrtime.bigint() - start) / 1e6);
        }).catch((error: unknown) => {
          if (error instanceof Elapsed) return error.ms;
          throw error;
        });
        (timings[`${workload} ${mode}`] ??= []).push(ms);
      }
    }
  }

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(`rounds: ${rounds} (median; min in brackets), PostgreSQL ${(await sql`SHOW server_version`)[0]!.server_version}`);
  for (const [workload, { events }] of Object.entries(workloads)) {
    const base = median(timings[`${workload} no-trigger`]!);
    for (const mode of modes) {
      const ms = median(timings[`${workload} ${mode}`]!);
      const min = Math.min(...timings[`${workload} ${mode}`]!);
      const perEvent = (ms * 1000) / events;
      const delta = ((ms - base) * 1000) / events;
      console.log(
        `${workload.padEnd(6)} ${mode.padEnd(10)} ${ms.toFixed(1).padStart(8)} ms  ${perEvent.toFixed(2).padStart(6)} µs/event [${((min * 1000) / events).toFixed(2)}]  ${mode === 'no-trigger' ? '' : `${delta >= 0 ? '+' : ''}${delta.toFixed(2)} µs/event vs no-trigger`}`,
      );
    }
  }
} finally {
  await sql.end({ timeout: 5 });
  await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.end();
}
