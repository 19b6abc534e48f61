// Migrations: idempotent, safe when many processes migrate at once, isolated per schema (one schema
// per tenant); a db/sql file is applied again only when it changed, and grants survive it; a database
// migrated before the baseline upgrades in place; a database that was never migrated says so
// instead of failing obscurely.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import postgres from 'postgres';
import { CrierError, migrate } from '../src/index.ts';
import { createCrier } from './support/history.ts';
import { migrationsFolder, sqlFiles } from '../src/migrate.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/database.ts';

const journalTags = (
  JSON.parse(readFileSync(`${migrationsFolder()}/meta/_journal.json`, 'utf8')) as { entries: { tag: string }[] }
).entries.map((e) => e.tag);
const sqlFileNames = [...sqlFiles.beforeTables, ...sqlFiles.afterTables].map((f) => `sql/${f}`);
const everything = [...journalTags, ...sqlFileNames];

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
  assert.deepEqual(first, { schema: 'crier', applied: everything });
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
  assert.deepEqual(applying[0]!.applied, everything);
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
  assert.deepEqual(result, { schema: 'tenant_a', applied: everything });
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
    // Finished: handled, and no row left unfinished (done, or gone under history 'failures').
    await eventually(async () => {
      const [row] = await db.sql`SELECT count(*)::int AS n FROM tenant_a.deliveries WHERE state <> 'done'`;
      return handled.length === 3 && row!.n === 0;
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

// Everything a reader of the schema could tell apart: columns, constraints, indexes, functions (with
// their attributes and grants), triggers (and whether they are enabled), views.
async function schemaSignature(db: TestDatabase, schema: string) {
  const rows = await db.sql`
    SELECT 'column ' || c.relname || '.' || a.attname || ' #' || a.attnum || ' ' || format_type(a.atttypid, a.atttypmod) AS item
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    WHERE c.relnamespace = to_regnamespace(${schema}) AND c.relkind IN ('r', 'v') AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL SELECT 'table ' || relname || ' ' || relpersistence::text FROM pg_class WHERE relnamespace = to_regnamespace(${schema}) AND relkind = 'r'
    UNION ALL SELECT 'constraint ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = to_regnamespace(${schema})
    UNION ALL SELECT 'index ' || pg_get_indexdef(indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relnamespace = to_regnamespace(${schema})
    UNION ALL SELECT 'function ' || pg_get_functiondef(p.oid) || coalesce(p.proacl::text, '(default acl)')
    FROM pg_proc p WHERE p.pronamespace = to_regnamespace(${schema}) AND p.prokind <> 'a'
    UNION ALL SELECT 'trigger ' || pg_get_triggerdef(t.oid) || ' ' || t.tgenabled::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
    WHERE c.relnamespace = to_regnamespace(${schema}) AND NOT t.tgisinternal
    UNION ALL SELECT 'view ' || c.relname || ' ' || pg_get_viewdef(c.oid) || coalesce(c.relacl::text, '') FROM pg_class c
    WHERE c.relnamespace = to_regnamespace(${schema}) AND c.relkind = 'v'
    ORDER BY 1`;
  return rows.map((r) => r.item as string);
}

/** Loads a database as a development build of crier before 0.1.0 migrated it (all 14 migrations). */
async function loadPreBaselineSchema(db: TestDatabase) {
  const dump = gunzipSync(readFileSync(new URL('./fixtures/pre-0.1.0-schema.sql.gz', import.meta.url))).toString('utf8');
  const loader = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    await loader.unsafe(dump).simple();
  } finally {
    await loader.end();
  }
}

const isDefiner = async (db: TestDatabase, fn: string) =>
  (await db.sql`SELECT prosecdef FROM pg_proc WHERE oid = ${fn}::regprocedure`)[0]!.prosecdef as boolean;
const canExecute = async (db: TestDatabase, role: string, fn: string) =>
  (await db.sql`SELECT has_function_privilege(${role}, ${fn}, 'EXECUTE') AS yes`)[0]!.yes as boolean;
const claimOrIdle = 'crier.claim_or_idle(text, text, integer, bigint[], integer[], boolean, bigint[])';

test('a changed db/sql file is applied again, alone; the grants are derived again, SECURITY DEFINER stays', async () => {
  const db = await database('migrate_changed_file', true);
  const prefix = `m_${randomBytes(3).toString('hex')}`;
  await db.sql`SELECT crier.create_roles(${prefix})`;
  try {
    assert.equal(await canExecute(db, `${prefix}_worker`, claimOrIdle), true);
    // A file whose recorded hash no longer matches (as after an upgrade that changed it), and a
    // redefinition of its function that lost the grant (as DROP and CREATE do).
    await db.sql`UPDATE drizzle.__crier_sql_files SET sha256 = 'stale' WHERE file = 'deliveries/claim.sql'`;
    await db.sql.unsafe(`REVOKE EXECUTE ON FUNCTION ${claimOrIdle} FROM ${prefix}_worker`);
    const before = await schemaSignature(db, 'crier');
    assert.deepEqual((await migrate({ connection: db.url })).applied, ['sql/deliveries/claim.sql']);
    assert.equal(await canExecute(db, `${prefix}_worker`, claimOrIdle), true, 'the worker may call claim_or_idle again');
    assert.equal(await isDefiner(db, 'crier.fan_out()'), true);
    assert.equal(await canExecute(db, 'public', 'crier.enqueue(bigint[], text)'), false, 'nothing is callable by PUBLIC');
    assert.equal((await schemaSignature(db, 'crier')).length, before.length);
    assert.deepEqual((await migrate({ connection: db.url })).applied, [], 'and only once');
  } finally {
    await db.sql`SELECT crier.drop_roles(${prefix})`;
  }
});

test('a database migrated before the baseline upgrades in place to exactly what a fresh one gets', async () => {
  const fresh = await database('migrate_fresh_ref', true);
  const old = await database('migrate_pre_baseline', false);
  await loadPreBaselineSchema(old);
  const prefix = `m_${randomBytes(3).toString('hex')}`;
  await old.sql`SELECT crier.create_roles(${prefix})`; // the old create_roles
  try {
    const result = await migrate({ connection: old.url });
    const afterBaseline = journalTags.slice(1);
    assert.deepEqual(result.applied, [...afterBaseline, ...sqlFileNames], 'the baseline is skipped; the later table migrations and every db/sql file');
    const [rows] = await old.sql`SELECT count(*)::int AS n FROM drizzle.__crier_migrations`;
    assert.equal(rows!.n, 14 + afterBaseline.length, 'the journal is kept, and the later migrations added');
    await fresh.sql`SELECT crier.create_roles(${prefix})`;
    assert.deepEqual(await schemaSignature(old, 'crier'), await schemaSignature(fresh, 'crier'));
    assert.equal(await canExecute(old, `${prefix}_worker`, claimOrIdle), true, 'roles made before get the new functions');

    // And it works: a publish fans out, a claim gets it.
    await old.sql`INSERT INTO crier.subscriptions (name, topics) VALUES ('s', '{a.#}')`;
    await createCrier().publish(old.sql, 'a.b', {});
    const claimed = await old.sql`SELECT delivery_id FROM crier.claim_or_idle('s', 'w', 10, '{}', '{}', false, NULL)`;
    assert.equal(claimed.length, 1);
  } finally {
    // Roles are cluster-wide: forget them in one database before dropping them from the other.
    await fresh.sql.unsafe(`DROP OWNED BY ${['publisher', 'worker', 'operator', 'auditor'].map((r) => `${prefix}_${r}`).join(', ')}`).catch(() => {});
    await old.sql`SELECT crier.drop_roles(${prefix})`;
  }
});

test('a database migrated part-way before the baseline gets CRIER_NOT_MIGRATED saying what to do', async () => {
  const db = await database('migrate_part_way', false);
  await loadPreBaselineSchema(db);
  await db.sql`DELETE FROM drizzle.__crier_migrations WHERE id > 11`;
  await assert.rejects(migrate({ connection: db.url }), (error: unknown) => {
    isCode('CRIER_NOT_MIGRATED')(error);
    assert.match((error as Error).message, /part-way.*finish migrating it with that build first.*DROP SCHEMA "crier" CASCADE/s);
    return true;
  });
});
