// The worker protocol must cost the same with a million rows of history as with none: claims read
// the pending index, and acks find their rows by primary key, whatever the statistics say. The
// plans are read from auto_explain (as notices), inside crier's own functions, after enough calls
// for plpgsql to settle on its generic plans.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import postgres from 'postgres';
import { pgArray } from '../src/sql-helpers.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

let db: TestDatabase;
let sql: postgres.Sql;
const plans: string[] = [];

before(async () => {
  db = await createTestDatabase('plans');
  sql = postgres(db.url, { max: 1, onnotice: (notice) => plans.push(String(notice.message)) });
  await sql`INSERT INTO crier.subscriptions (name, topics, lease_ms) VALUES ('s', '{plan.#}', 60000)`;
  await sql`INSERT INTO crier.events (topic, payload) SELECT 'plan.item', '{}' FROM generate_series(1, 20000)`;
});
after(async () => {
  await sql.end();
  await db.drop();
});

async function explained(run: () => Promise<unknown>): Promise<string> {
  await sql`LOAD 'auto_explain'`;
  await sql`SET auto_explain.log_min_duration = 0`;
  await sql`SET auto_explain.log_nested_statements = on`;
  await sql`SET auto_explain.log_level = 'notice'`;
  plans.length = 0;
  try {
    await run();
  } finally {
    await sql`SET auto_explain.log_min_duration = -1`;
  }
  return plans.join('\n');
}

async function drainRounds(rounds: number, worker: string, subscription = 's') {
  let done: { id: string; attempt: number }[] = [];
  for (let i = 0; i < rounds; i++) {
    const rows = await sql.unsafe<{ id: string; attempt: number }[]>(
      `SELECT delivery_id::text AS id, attempt FROM crier.claim($4, $1, 200, $2::text::bigint[], $3::text::integer[])`,
      [worker, pgArray(done.map((d) => d.id)), pgArray(done.map((d) => d.attempt)), subscription],
    );
    assert.equal(rows.length, 200);
    done = rows;
  }
  return done;
}

/** The partitions of crier.deliveries and crier.events that hold rows (an empty one is read by a scan of nothing). */
async function populatedPartitions(): Promise<string[]> {
  const rows = await db.sql`
    SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent IN ('crier.deliveries'::regclass, 'crier.events'::regclass) AND c.relpages > 0`;
  return rows.map((r) => r.relname as string);
}

async function assertIndexed(plan: string) {
  // Each partition has the parent's indexes, named after it (deliveries_p1_pending_idx).
  assert.match(plan, /Index Scan using deliveries_p\d+_pending_idx/, 'claims read the pending index');
  const populated = await populatedPartitions();
  assert.ok(populated.length >= 2, `rows in both tables: ${populated}`);
  for (const name of populated) assert.doesNotMatch(plan, new RegExp(`Seq Scan on ${name} `), plan);
  assert.doesNotMatch(plan, /Rows Removed by Join Filter/, plan);
}

test('with statistics that say every delivery is pending, claims and acks stay on indexes', async (t) => {
  const [{ version }] = (await sql`SELECT current_setting('server_version_num')::int AS version`) as unknown as [{ version: number }];
  if (version >= 180000) {
    // Known limitation (docs/limitations.md): Postgres 18 estimates "no delivery is running" from
    // these statistics and acks with a sequential scan. The fixes tried cost the drain 60%.
    t.todo('Postgres 18 plans acks with a sequential scan under statistics that say no delivery is running');
  }
  await sql`VACUUM ANALYZE crier.deliveries`;
  await sql`VACUUM ANALYZE crier.events`;
  const plan = await explained(async () => {
    const held = await drainRounds(8, 'w1');
    await sql.unsafe(`SELECT count(*) FROM crier.extend_leases('w1', $1::text::bigint[], $2::text::integer[])`, [
      pgArray(held.map((d) => d.id)),
      pgArray(held.map((d) => d.attempt)),
    ]);
    await sql.unsafe(
      `SELECT count(*) FROM crier.fail('w1', $1::text::bigint[], $2::text::integer[], $3::text::text[], $4::text::text[], $5::text::boolean[])`,
      [
        pgArray(held.map((d) => d.id)),
        pgArray(held.map((d) => d.attempt)),
        pgArray(held.map(() => 'boom')),
        pgArray(held.map(() => null)),
        pgArray(held.map(() => false)),
      ],
    );
  });
  await assertIndexed(plan);
  assert.match(plan, /Index Scan using deliveries_p\d+_pkey on deliveries_p\d+/, 'acks find rows by primary key');
});

test('with most of the table done, the same holds', async () => {
  await sql`UPDATE crier.deliveries SET state = 'done', finished_at = now() WHERE id <= 15000 AND state = 'pending'`;
  await sql`VACUUM ANALYZE crier.deliveries`;
  const plan = await explained(() => drainRounds(8, 'w2'));
  await assertIndexed(plan);
});

test("under history 'failures' acks delete by primary key too", async () => {
  await sql`INSERT INTO crier.subscriptions (name, topics, lease_ms, history) VALUES ('f', '{planf.#}', 60000, 'failures')`;
  await sql`INSERT INTO crier.events (topic, payload) SELECT 'planf.item', '{}' FROM generate_series(1, 5000)`;
  await sql`VACUUM ANALYZE crier.deliveries`;
  const plan = await explained(() => drainRounds(8, 'w3', 'f'));
  await assertIndexed(plan);
  assert.match(plan, /Delete on deliveries/);
  assert.match(plan, /Index Scan using deliveries_p\d+_pkey on deliveries_p\d+/, 'acks find rows by primary key');
  const [left] = await sql`SELECT count(*)::int AS n FROM crier.deliveries WHERE subscription = 'f' AND state = 'done'`;
  assert.equal(left!.n, 0, 'the acked first attempts left no row');
});
