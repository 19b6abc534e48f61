// Partitioned history (db/sql/partitions.sql, migration 0005): crier.events and crier.deliveries are
// partitioned by ranges of id, crier.partitioning's rows_per_partition ids each; workers' polls add
// ranges ahead of the ids; a default partition takes ids past every range; prune drops whole
// partitions whose every row may go and walks the rest. Each test works in its own database, with
// partitions of 1,000 ids (the smallest allowed), so that a few thousand events span several.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import postgres from 'postgres';
import { createAdmin, migrate, UnrecoverableError, type CrierEvent } from '../src/index.ts';
import { migrationsFolder, sqlFiles, sqlFolder } from '../src/migrate.ts';
import { applyJournal, readJournal } from '../src/migration-journal.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/database.ts';
import { createCrier } from './support/history.ts';

const crier = createCrier();
const databases: TestDatabase[] = [];
after(async () => {
  await Promise.all(databases.map((db) => db.drop()));
});

async function database(label: string, options: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const db = await createTestDatabase(`partitions_${label}`, options);
  databases.push(db);
  return db;
}

interface Range {
  partition: string;
  lower: number | null;
  upper: number;
  rows: number;
}

/** The range partitions of a table, oldest first, with the rows each holds. */
async function ranges(db: TestDatabase, table: 'events' | 'deliveries'): Promise<Range[]> {
  const rows = await db.sql.unsafe(
    `SELECT p.partition::text AS partition, p.lower::int AS lower, p.upper::int AS upper,
            (SELECT count(*)::int FROM crier.${table} t WHERE t.tableoid = p.partition) AS rows
     FROM crier.partitions('crier.${table}') p`,
  );
  return rows.map((r) => ({ partition: r.partition, lower: r.lower, upper: r.upper, rows: r.rows }));
}

async function inDefault(db: TestDatabase, table: 'events' | 'deliveries'): Promise<number> {
  const [row] = await db.sql.unsafe(`SELECT count(*)::int AS n FROM crier.${table}_default`);
  return row!.n;
}

const count = async (db: TestDatabase, query: string): Promise<number> => Number((await db.sql.unsafe(query))[0]!.n);

test('a fresh schema: both tables partitioned by id, with a default partition and one range ahead', async () => {
  const db = await database('fresh');
  const kinds = await db.sql`
    SELECT c.relname, c.relkind FROM pg_class c
    WHERE c.relnamespace = 'crier'::regnamespace AND c.relname IN ('events', 'deliveries') ORDER BY 1`;
  assert.deepEqual(kinds.map((r) => `${r.relname}:${r.relkind}`), ['deliveries:p', 'events:p']);
  const [settings] = await db.sql`SELECT rows_per_partition::int AS n FROM crier.partitioning`;
  assert.equal(settings!.n, 1_000_000);
  for (const table of ['events', 'deliveries'] as const) {
    assert.deepEqual(await ranges(db, table), [{ partition: `crier.${table}_p1`, lower: 1, upper: 1_000_001, rows: 0 }]);
    assert.equal(await inDefault(db, table), 0);
  }
  // Every partition carries the parent's indexes, named after it.
  const indexes = await db.sql`
    SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE i.indrelid = 'crier.deliveries_p1'::regclass ORDER BY 1`;
  assert.deepEqual(indexes.map((r) => r.relname), [
    'deliveries_p1_dead_idx', 'deliveries_p1_event_idx', 'deliveries_p1_lease_idx', 'deliveries_p1_pending_idx',
    'deliveries_p1_pkey', 'deliveries_p1_waiting_idx',
  ]);

  await assert.rejects(db.sql`SELECT crier.set_rows_per_partition(999)`, /CRIER_INVALID_OPTION: rows per partition must be at least 1000, got 999/);
  // While a transaction reads the log, the setting is kept and the ranges ahead stay (after 5 s).
  const notices: string[] = [];
  const busy = postgres(db.url, { max: 2, onnotice: (n) => notices.push(String(n.message)) });
  try {
    await busy.begin(async (tx) => {
      await tx`SELECT count(*) FROM crier.events`;
      const [row] = await busy`SELECT crier.set_rows_per_partition(2000) AS n`;
      assert.equal(Number(row!.n), 0);
    });
  } finally {
    await busy.end();
  }
  assert.match(notices.join('\n'), /rows per partition set to 2000; the ranges already made ahead keep their size \(the tables are busy/);
  assert.deepEqual((await ranges(db, 'events')).map((r) => [r.lower, r.upper]), [[1, 1_000_001]]);
  assert.equal(Number((await db.sql`SELECT rows_per_partition AS n FROM crier.partitioning`)[0]!.n), 2000);

  assert.equal(Number((await db.sql`SELECT crier.set_rows_per_partition(1000) AS n`)[0]!.n), 2, 'the empty ranges ahead are made again');
  assert.deepEqual((await ranges(db, 'events')).map((r) => [r.lower, r.upper]), [[1, 1001]]);
});

test("ranges are added ahead as the ids grow; prune drops whole partitions and walks the rest", async () => {
  const db = await database('worker');
  const admin = createAdmin({ connection: db.sql });
  await db.sql`SELECT crier.set_rows_per_partition(1000)`;
  const handled = new Set<string>();
  const worker = await crier
    .worker({
      connection: db.url,
      handleSignals: false,
      logger: false,
      pollInterval: '50ms',
      subscriptions: [
        {
          name: 'p',
          topics: ['p.#'],
          history: 'full', // about done rows and their partitions: the same under `npm test -- --history failures`
          maxAttempts: 1,
          handler: async (event: CrierEvent<{ n: number }>) => {
            handled.add(event.id);
            if (event.payload.n === 42) throw new UnrecoverableError('the one dead letter');
          },
        },
      ],
    })
    .start();
  let published: string[] = [];
  try {
    for (let batch = 0; batch < 7; batch++) {
      const events = await db.sql.begin((tx) =>
        crier.publishMany(tx, Array.from({ length: 500 }, (_, i) => ({ topic: 'p.x', payload: { n: batch * 500 + i } }))),
      );
      published = [...published, ...events.map((e) => e.id)];
      // A whole range stays ahead of the ids: wait for it before the next batch. After the first
      // batch (ids 1..500) no commit passed a 1,000th id, so only the worker's poll can add it.
      const next = Math.max(...published.map(Number)) + 1;
      await eventually(async () => (await ranges(db, 'events')).at(-1)!.upper - next >= 1000, 10_000, 'a range ahead of the events');
      await eventually(async () => (await ranges(db, 'deliveries')).at(-1)!.upper - next >= 1000, 10_000, 'a range ahead of the deliveries');
    }
    await eventually(async () => handled.size === 3500, 20_000, 'every event handled');
    await eventually(async () => (await count(db, `SELECT count(*) AS n FROM crier.deliveries WHERE state NOT IN ('done', 'dead')`)) === 0, 10_000, 'all finished');
  } finally {
    await worker.stop();
  }
  const events = await ranges(db, 'events');
  assert.equal(await inDefault(db, 'events'), 0, 'nothing fell to the default partition');
  assert.equal(await inDefault(db, 'deliveries'), 0);
  assert.deepEqual(events.slice(0, 4).map((r) => r.rows), [1000, 1000, 1000, 500], 'ids 1..3500 over four ranges');

  // The dead letter (event 43) keeps its deliveries partition, and its event's partition, whole.
  const dry = await admin.prune({ olderThan: 0, events: true, dryRun: true });
  assert.deepEqual({ deliveries: dry.deliveries, partitions: dry.partitions }, { deliveries: 3499, partitions: 2 },
    'dry run: the closed ranges of deliveries without the dead letter (deliveries_p1001, _p2001; _p3001 still takes ids)');
  assert.equal(await count(db, 'SELECT count(*) AS n FROM crier.deliveries'), 3500, 'a dry run changes nothing');

  const result = await admin.prune({ olderThan: 0, events: true });
  assert.equal(result.deliveries, 3499, 'every done delivery, whole partitions and walked rows alike');
  assert.equal(result.events, 3499, 'every event but the dead letter’s');
  assert.equal(result.partitions, 4, 'deliveries_p1001, _p2001, events_p1001, _p2001 dropped whole');
  for (const table of ['deliveries', 'events'] as const) {
    assert.deepEqual((await ranges(db, table)).map((r) => [r.lower, r.rows]), [[1, 1], [3001, 0], [4001, 0]],
      `${table}: the first range keeps the dead letter; the open one was walked`);
  }
  const [dead] = await db.sql`SELECT d.state, e.payload FROM crier.deliveries d JOIN crier.events e ON e.id = d.event_id`;
  assert.deepEqual({ state: dead!.state, n: dead!.payload.n }, { state: 'dead', n: 42 });

  const withDead = await admin.prune({ olderThan: 0, dead: true, events: true });
  assert.deepEqual({ deliveries: withDead.deliveries, events: withDead.events, partitions: withDead.partitions }, { deliveries: 1, events: 1, partitions: 2 });
  assert.equal(await count(db, 'SELECT count(*) AS n FROM crier.events'), 0);
});

test("producers' commits add ranges ahead; ids past every range land in the default partition", async () => {
  const db = await database('overflow');
  await db.sql`SELECT crier.set_rows_per_partition(1000)`;
  await db.sql`INSERT INTO crier.subscriptions (name, topics) VALUES ('o', '{o.#}')`;
  // No worker polls. Transactions of 500: each commit past a 1,000th id adds the range ahead.
  for (let i = 0; i < 7; i++) {
    await crier.publishMany(db.sql, Array.from({ length: 500 }, (_, n) => ({ topic: 'o.x', payload: { n } })));
  }
  assert.deepEqual((await ranges(db, 'events')).map((r) => r.rows), [1000, 1000, 1000, 500]);
  assert.deepEqual((await ranges(db, 'deliveries')).map((r) => r.rows), [1000, 1000, 1000, 500]);
  assert.equal(await inDefault(db, 'events'), 0, 'nothing fell to the default partition');

  // One transaction of 2,500 outruns the 500 ids of room left without failing; its commit adds a
  // range above what the default partition took.
  await db.sql`INSERT INTO crier.events (topic, payload) SELECT 'o.x', '{}' FROM generate_series(1, 2500)`;
  assert.equal(await inDefault(db, 'events'), 2000);
  assert.equal(await inDefault(db, 'deliveries'), 2000);
  assert.deepEqual((await ranges(db, 'events')).map((r) => [r.lower, r.upper]).slice(-2), [[3001, 4001], [6001, 7001]]);
  assert.equal(Number((await db.sql`SELECT crier.extend_partitions() AS n`)[0]!.n), 0, 'nothing left to add');
  await crier.publish(db.sql, 'o.x', { after: true });
  assert.equal((await ranges(db, 'events')).at(-1)!.rows, 1, 'the next event goes to the new range');
  const claimed = await db.sql`SELECT delivery_id FROM crier.claim('o', 'w', 10000)`;
  assert.equal(claimed.length, 6001, 'every delivery claimable, the default partition’s too');
});

test('a database of migration 0004 with history upgrades in place: rows kept, ids go on, work goes on', async () => {
  const db = await database('upgrade', { migrate: false });
  await db.sql`CREATE SCHEMA crier`;
  // The schema as 0004 left it: the functions the tables need, then the table migrations up to 0004.
  for (const file of sqlFiles.beforeTables) await db.sql.unsafe(readFileSync(`${sqlFolder()}/${file}`, 'utf8')).simple();
  const journal = readJournal(migrationsFolder());
  const upTo0004 = journal.slice(0, journal.findIndex((m) => m.tag.startsWith('0005')));
  const client = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    await applyJournal<postgres.TransactionSql>(client, upTo0004, { schema: 'drizzle', table: '__crier_migrations' });
  } finally {
    await client.end();
  }
  await db.sql`INSERT INTO crier.subscriptions (name, topics) VALUES ('u', '{u.#}')`;
  const old = await db.sql`
    INSERT INTO crier.events (topic, payload) SELECT 'u.x', jsonb_build_object('n', g) FROM generate_series(1, 300) g
    RETURNING id, uuid`;
  await db.sql`
    INSERT INTO crier.deliveries (event_id, subscription, state, finished_at)
    SELECT e.id, 'u', CASE WHEN e.id <= 200 THEN 'done' ELSE 'pending' END, CASE WHEN e.id <= 200 THEN now() END
    FROM crier.events e`;

  // Ids drawn and not kept (rolled back publishes) leave the sequence ahead of the rows.
  await db.sql`SELECT setval(pg_get_serial_sequence('crier.events', 'id'), 2000000)`;

  await migrate({ connection: db.url });
  for (const table of ['events', 'deliveries'] as const) {
    const upper = table === 'events' ? 2_000_001 : 301;
    assert.deepEqual(await ranges(db, table), [
      { partition: `crier.${table}_p0`, lower: null, upper, rows: 300 },
      { partition: `crier.${table}_p${upper}`, lower: upper, upper: upper + 1_000_000, rows: 0 },
    ], `${table}: the old table is its first partition, and a range follows from its next id`);
  }
  const kept = await db.sql`SELECT id, uuid FROM crier.events ORDER BY id`;
  assert.deepEqual(kept.map((r) => [r.id, r.uuid]), old.map((r) => [r.id, r.uuid]));
  const [next] = await crier.publishMany(db.sql, [{ topic: 'u.x', payload: { n: 301 } }]);
  assert.equal(next!.id, '2000001', 'ids go on from where they were');
  assert.equal(await inDefault(db, 'events'), 0, 'into the range, not the default partition');
  const claimed = await db.sql`SELECT event_id::int AS id FROM crier.claim('u', 'w', 500) ORDER BY event_id`;
  assert.deepEqual(claimed.map((r) => r.id), [...Array.from({ length: 100 }, (_, i) => 201 + i), 2_000_001],
    'old pending work and the new event, fanned out');
  const pruned = await createAdmin({ connection: db.sql }).prune({ olderThan: 0 });
  assert.equal(pruned.deliveries, 200, 'the old done deliveries, walked (their partition still holds running ones)');
});
