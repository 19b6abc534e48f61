// The metrics views must cost what the live work costs, never what the history costs: with a table
// of mostly done deliveries, crier.subscription_gauges reads the partial indexes (no sequential scan
// of crier.deliveries) and crier.published_events' window reads the BRIN index of crier.events.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

let db: TestDatabase;

before(async () => {
  db = await createTestDatabase('metrics_plans');
  const sql = db.sql;
  await sql`INSERT INTO crier.subscriptions (name, topics) VALUES ('a', '{bulk.#}'), ('b', '{bulk.one}')`;
  // 40,000 events over the last 11 hours, 60,000 deliveries: 1% pending, 0.1% running, 0.1% dead.
  await sql`INSERT INTO crier.events (topic, payload, created_at)
            SELECT CASE WHEN g % 2 = 0 THEN 'bulk.one' ELSE 'bulk.two' END, '{}', now() - (40000 - g) * interval '1 second'
            FROM generate_series(1, 40000) g`;
  await sql`UPDATE crier.deliveries SET state = 'done', finished_at = now() WHERE id % 100 <> 0`;
  await sql`UPDATE crier.deliveries SET state = 'running', attempts = 1, locked_until = now() - interval '1 minute' WHERE id % 1000 = 0`;
  await sql`UPDATE crier.deliveries SET state = 'dead', attempts = 5, finished_at = now() WHERE id % 1000 = 500`;
  await sql`REINDEX INDEX crier.deliveries_pending_idx`;
  await sql`VACUUM ANALYZE crier.deliveries`;
  await sql`VACUUM ANALYZE crier.events`;
  await sql`ANALYZE crier.subscriptions`;
  await sql`ANALYZE crier.ordered_keys`;
});
after(async () => {
  await db.drop();
});

/** The partitions of a table that hold rows (the planner reads an empty one by a scan of nothing). */
async function populatedPartitions(table: 'deliveries' | 'events'): Promise<string[]> {
  const rows = await db.sql.unsafe(
    `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'crier.${table}'::regclass AND c.relpages > 0`,
  );
  assert.ok(rows.length > 0, `rows in crier.${table}`);
  return rows.map((r) => r.relname as string);
}

async function plan(query: string): Promise<string> {
  const rows = await db.sql.unsafe(`EXPLAIN ${query}`);
  return rows.map((r) => r['QUERY PLAN'] as string).join('\n');
}

test('crier.subscription_gauges reads the partial indexes, not the history', async () => {
  const text = await plan('SELECT * FROM crier.subscription_gauges');
  for (const name of await populatedPartitions('deliveries')) assert.doesNotMatch(text, new RegExp(`Seq Scan on ${name} `), text);
  for (const index of ['pending_idx', 'lease_idx', 'dead_idx']) assert.match(text, new RegExp(`deliveries_p\\d+_${index}`), text);
  const [a] = await db.sql`SELECT backlog, running, stuck, dead FROM crier.subscription_gauges WHERE subscription = 'a'`;
  const [b] = await db.sql`SELECT
      count(*) FILTER (WHERE state = 'pending') AS backlog, count(*) FILTER (WHERE state = 'running') AS running,
      count(*) FILTER (WHERE state = 'running' AND locked_until < now()) AS stuck, count(*) FILTER (WHERE state = 'dead') AS dead
    FROM crier.deliveries WHERE subscription = 'a'`;
  assert.deepEqual({ ...a }, { ...b });
});

test('a published window reads the BRIN index of crier.events', async () => {
  const text = await plan(`SELECT topic, count(*) FROM crier.published_events
    WHERE published_at >= now() - interval '1 minute' AND published_at < now() - interval '10 seconds' GROUP BY topic`);
  assert.match(text, /Bitmap Index Scan on events_p\d+_created_at_brin/, text);
  for (const name of await populatedPartitions('events')) assert.doesNotMatch(text, new RegExp(`Seq Scan on ${name} `), text);
});
