// Migrations: idempotent, safe when many processes migrate at once, isolated per schema (one schema
// per tenant), and a database that was never migrated says so instead of failing obscurely.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { createCrier, CrierError, migrate } from '../src/index.ts';
import { migrationsFolder } from '../src/migrate.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/database.ts';

const journalTags = (
  JSON.parse(readFileSync(`${migrationsFolder()}/meta/_journal.json`, 'utf8')) as { entries: { tag: string }[] }
).entries.map((e) => e.tag);

const databases: TestDatabase[] = [];
async function database(label: string, migrated: boolean) {
  const db = await createTestDatabase(label, { migrate: migrated });
  databases.push(db);
  return db;
}
after(async () => {
  for (const db of databases) await db.drop();
});

const isCode = (code: string) => (error: unknown) => {
  assert.ok(error instanceof CrierError, `expected a CrierError, got ${String(error)}`);
  assert.equal(error.code, code, error.message);
  return true;
};

async function objectsIn(db: TestDatabase, schema: string) {
  const [row] = await db.sql`
    SELECT (SELECT array_agg(table_name::text ORDER BY table_name) FROM information_schema.tables WHERE table_schema = ${schema}) AS tables,
           (SELECT array_agg(proname::text ORDER BY proname) FROM pg_proc WHERE pronamespace = to_regnamespace(${schema})) AS functions,
           (SELECT array_agg(tgname::text ORDER BY tgname) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
             WHERE c.relnamespace = to_regnamespace(${schema}) AND NOT t.tgisinternal) AS triggers`;
  return { tables: row!.tables ?? [], functions: row!.functions ?? [], triggers: row!.triggers ?? [] };
}

test('migrate applies every migration once; the second call is a no-op', async () => {
  const db = await database('migrate_twice', false);
  const first = await migrate({ connection: db.url });
  assert.deepEqual(first, { schema: 'crier', applied: journalTags });
  const objects = await objectsIn(db, 'crier');
  const second = await migrate({ connection: db.sql });
  assert.deepEqual(second, { schema: 'crier', applied: [] });
  assert.deepEqual(await objectsIn(db, 'crier'), objects, 'nothing was created twice');
  const [row] = await db.sql`SELECT count(*)::int AS n FROM drizzle.__crier_migrations`;
  assert.equal(row!.n, journalTags.length);
  const [epoch] = await db.sql`SELECT count(*)::int AS n FROM crier.route_epoch`;
  assert.equal(epoch!.n, 1);
});

test('five concurrent migrate() calls on a fresh database all succeed and apply once', async () => {
  const db = await database('migrate_parallel', false);
  const results = await Promise.all(Array.from({ length: 5 }, () => migrate({ connection: db.url })));
  const applying = results.filter((r) => r.applied.length > 0);
  assert.equal(applying.length, 1, 'exactly one call applied the migrations');
  assert.deepEqual(applying[0]!.applied, journalTags);
  assert.ok(results.every((r) => r.applied.length === 0 || r === applying[0]));
  const [row] = await db.sql`SELECT count(*)::int AS n FROM drizzle.__crier_migrations`;
  assert.equal(row!.n, journalTags.length, 'each migration recorded once');
  const [epoch] = await db.sql`SELECT count(*)::int AS n FROM crier.route_epoch`;
  assert.equal(epoch!.n, 1);
  // And the result works.
  await db.sql`INSERT INTO crier.subscriptions (name, topics) VALUES ('s', '{a.#}')`;
  await createCrier().publish(db.sql, 'a.b', {});
  const [delivered] = await db.sql`SELECT count(*)::int AS n FROM crier.deliveries`;
  assert.equal(delivered!.n, 1);
});

test("a custom schema gets its own tables and functions, and working there never touches 'crier'", async () => {
  const db = await database('migrate_tenant', true);
  const crierBefore = await objectsIn(db, 'crier');
  const result = await migrate({ connection: db.url, schema: 'tenant_a' });
  assert.deepEqual(result, { schema: 'tenant_a', applied: journalTags });
  assert.deepEqual((await migrate({ connection: db.url, schema: 'tenant_a' })).applied, []);

  const tenant = await objectsIn(db, 'tenant_a');
  assert.deepEqual(tenant, crierBefore, 'the same tables, functions and triggers as schema crier');
  assert.deepEqual(await objectsIn(db, 'crier'), crierBefore, 'crier untouched');
  const [leaks] = await db.sql`
    SELECT count(*)::int AS n FROM pg_proc
    WHERE pronamespace = 'tenant_a'::regnamespace AND prosrc ~ '\\mcrier\\M'`;
  assert.equal(leaks!.n, 0, "no tenant_a function refers to schema crier or its NOTIFY channel");
  const [checks] = await db.sql`
    SELECT count(*)::int AS n FROM pg_constraint
    WHERE connamespace = 'tenant_a'::regnamespace AND pg_get_constraintdef(oid) ~ '\\mcrier\\.'`;
  assert.equal(checks!.n, 0, 'no tenant_a constraint refers to schema crier');

  const tenantCrier = createCrier({ schema: 'tenant_a' });
  const handled: string[] = [];
  const worker = tenantCrier.worker({
    connection: db.url,
    handleSignals: false,
    logger: false,
    subscriptions: [{ name: 'tenant-orders', topics: ['order.#'], handler: (event) => void handled.push(event.id) }],
  });
  await worker.start();
  try {
    const published = await db.sql.begin((tx) =>
      tenantCrier.publishMany(tx, [
        { topic: 'order.created', payload: { n: 1 } },
        { topic: 'order.paid', payload: { n: 2 } },
      ]),
    );
    await db.sql`SELECT tenant_a.publish('order.shipped', '{"n": 3}')`;
    await eventually(async () => {
      const [row] = await db.sql`SELECT count(*)::int AS n FROM tenant_a.deliveries WHERE state = 'done'`;
      return row!.n === 3;
    }, 15_000, 'the tenant worker to finish three deliveries');
    assert.equal(handled.length, 3);
    assert.ok(published.every((e) => handled.includes(e.id)));
  } finally {
    await worker.stop();
  }
  const [counts] = await db.sql`
    SELECT (SELECT count(*)::int FROM tenant_a.events) AS tenant_events,
           (SELECT count(*)::int FROM tenant_a.subscriptions) AS tenant_subscriptions,
           (SELECT count(*)::int FROM crier.events) AS crier_events,
           (SELECT count(*)::int FROM crier.subscriptions) AS crier_subscriptions,
           (SELECT count(*)::int FROM crier.deliveries) AS crier_deliveries`;
  assert.deepEqual({ ...counts }, {
    tenant_events: 3, tenant_subscriptions: 1, crier_events: 0, crier_subscriptions: 0, crier_deliveries: 0,
  });

  // And the other way round: the default schema's publishing leaves the tenant alone.
  await db.sql`INSERT INTO crier.subscriptions (name, topics) VALUES ('crier-orders', '{order.#}')`;
  await createCrier().publish(db.sql, 'order.created', {});
  const [tenantAfter] = await db.sql`SELECT count(*)::int AS n FROM tenant_a.events`;
  assert.equal(tenantAfter!.n, 3);
});

test('invalid schema names are refused with CRIER_INVALID_OPTION before touching the database', async () => {
  const bad = ['', 'Tenant', '1tenant', 'tenant-a', 'tenant a', 'tenant;drop', 'a"b', 'crier.x', 'é', 'x'.repeat(64)];
  for (const schema of bad) {
    assert.throws(() => createCrier({ schema }), isCode('CRIER_INVALID_OPTION'), JSON.stringify(schema));
    // No server on port 1: only validation may answer.
    await assert.rejects(migrate({ connection: 'postgres://postgres@127.0.0.1:1/none', schema }), isCode('CRIER_INVALID_OPTION'));
  }
  for (const schema of ['_tenant', 't1', 'x'.repeat(63)]) assert.equal(createCrier({ schema }).schema, schema);
});

test('using crier on an unmigrated database gives CRIER_NOT_MIGRATED with a hint', async () => {
  const db = await database('migrate_none', false);
  const notMigrated = (error: unknown) => {
    isCode('CRIER_NOT_MIGRATED')(error);
    assert.match((error as Error).message, /crier migrate/, 'the message says what to run');
    return true;
  };
  await assert.rejects(createCrier().publish(db.sql, 'order.created', {}), notMigrated);
  await assert.rejects(db.sql.begin((tx) => createCrier().publishMany(tx, [{ topic: 'a', payload: {} }])), notMigrated);
  await migrate({ connection: db.url });
  await assert.rejects(createCrier({ schema: 'tenant_b' }).publish(db.sql, 'order.created', {}), notMigrated, 'an unmigrated schema too');
});
