// The typed catalog end to end: validation on publish (nothing written), poison messages dead at
// the first attempt, old versions upcast for new handlers, the catalog registered in SQL and the
// opt-in SQL-side validation, the test helpers and the `crier catalog` command.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { drizzle } from 'drizzle-orm/postgres-js';
import {
  CrierError,
  PayloadValidationError,
  PoisonMessageError,
  registerCatalog,
  type CatalogEvent,
} from '../src/index.ts';
import { createCrier, createTypedCrier, drain, publishAndDrain } from './support/history.ts';
import { listCatalog, setCatalogValidation, showCatalogEntry } from '../src/catalog/registry.ts';
import { invoke } from '../src/testing.ts';
import { catalog, catalogBeforeV2 } from './fixtures/catalog.ts';
import { assertFails, ensureBuilt, runCli } from './support/cli.ts';
import { createTestDatabase, deliveryOutcomes, deliveryStates, eventually, type TestDatabase } from './support/database.ts';

const crier = createTypedCrier(catalog);
let db: TestDatabase;
before(async () => {
  ensureBuilt();
  db = await createTestDatabase('catalog');
});
after(async () => {
  await db.drop();
});

async function eventCount(topic: string): Promise<number> {
  const [row] = await db.sql`SELECT count(*)::int AS n FROM crier.events WHERE topic = ${topic}`;
  return row!.n;
}

/** Whether the validation trigger on crier.events is enabled (it is only while some topic validates). */
async function checkEnabled(): Promise<boolean> {
  const [row] = await db.sql`
    SELECT tgenabled <> 'D' AS on FROM pg_trigger WHERE tgrelid = 'crier.events'::regclass AND tgname = 'events_catalog_check'`;
  return row!.on;
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  assert.fail('expected a rejection');
}

describe('validation on publish', () => {
  test('a bad payload throws the topic, version and zod issue paths, and writes nothing', async () => {
    const error = await rejection(
      db.sql.begin((tx) =>
        // A producer outside TypeScript's reach (JSON from a request, say) sends a bad payload.
        crier.publish(tx, 'order.created', { orderId: '', amountCents: 12.5, currency: 'eur' } as never),
      ),
    );
    assert.ok(error instanceof PayloadValidationError);
    assert.equal(error.code, 'CRIER_INVALID_PAYLOAD');
    assert.equal(error.topic, 'order.created');
    assert.equal(error.version, 2);
    assert.deepEqual(error.issues.map((i) => i.path.join('.')).sort(), ['amountCents', 'currency', 'orderId']);
    assert.match(error.message, /^CRIER_INVALID_PAYLOAD: order\.created v2: payload does not match the schema: /);
    assert.match(error.message, /amountCents: Invalid input: expected int, received number/);
    assert.match(error.message, /currency: Invalid string: must match pattern/);
    assert.equal(await eventCount('order.created'), 0);
  });

  test('publishMany validates every event before writing any', async () => {
    const error = await rejection(
      db.sql.begin((tx) =>
        crier.publishMany(tx, [
          { topic: 'order.shipped', payload: { orderId: 'o1', carrier: 'ups' } },
          { topic: 'order.shipped', payload: { orderId: 'o2', carrier: 'fedex' as 'ups' } },
        ]),
      ),
    );
    assert.ok(error instanceof PayloadValidationError);
    assert.match(error.message, /carrier: Invalid option: expected one of "ups"\|"dhl"/);
    assert.equal(await eventCount('order.shipped'), 0);
  });

  test('a topic outside the catalog is a runtime error with a suggestion', async () => {
    const error = await rejection(db.sql.begin((tx) => crier.publish(tx, 'order.shiped' as 'order.shipped', { orderId: 'o', carrier: 'ups' })));
    assert.ok(error instanceof CrierError);
    assert.equal(error.code, 'CRIER_UNKNOWN_TOPIC');
    assert.match(error.message, /not in the catalog; did you mean "order\.shipped"\?/);
  });

  test('a valid payload is stored as sent, with the latest version', async () => {
    const [event] = await db.sql.begin((tx) =>
      crier.publishMany(tx, [{ topic: 'order.created', payload: { orderId: 'ok-1', amountCents: 990, currency: 'SEK' } }]),
    );
    assert.equal(event!.version, 2);
    const [row] = await db.sql`SELECT version, payload FROM crier.events WHERE id = ${event!.id}`;
    assert.deepEqual({ ...row }, { version: 2, payload: { orderId: 'ok-1', amountCents: 990, currency: 'SEK' } });
  });
});

describe('validation on consume', () => {
  test('a poison payload inserted from SQL goes dead at the first attempt with the zod issues', async () => {
    const seen: string[] = [];
    const worker = crier.worker({
      connection: db.url,
      handleSignals: false,
      logger: false,
      subscriptions: [
        crier.subscription({
          name: 'poison-billing',
          topics: ['payment.captured'],
          maxAttempts: 5,
          handler: async (event) => {
            seen.push(event.payload.paymentId);
          },
        }),
      ],
    });
    await worker.start();
    try {
      // A SQL producer that knows nothing of the catalog: no validation flag is on.
      const [poison] = await db.sql`
        SELECT crier.publish('payment.captured', '{"paymentId": "not-a-uuid", "amountCents": -5}') AS id`;
      const [good] = await db.sql`
        SELECT crier.publish('payment.captured', '{"paymentId": "7d4ab8a0-3c1b-4e55-9a7e-2f5d2f0c9b10", "amountCents": 5}') AS id`;
      await eventually(async () => {
        const states = await deliveryOutcomes(db.sql, 'poison-billing', 2);
        return states.dead === 1 && states.succeeded === 1;
      }, 15_000, 'the poison delivery dead and the good one done');
      const [dead] = await db.sql`
        SELECT state, attempts, last_error FROM crier.deliveries WHERE event_id = ${poison!.id} AND subscription = 'poison-billing'`;
      assert.equal(dead!.state, 'dead');
      assert.equal(dead!.attempts, 1, 'no retries burnt on a payload that can never parse');
      assert.match(dead!.last_error, /^PoisonMessageError: payment\.captured v1: stored payload does not match the schema: /);
      assert.match(dead!.last_error, /paymentId: Invalid UUID/);
      assert.match(dead!.last_error, /amountCents: Too small: expected number to be >0/);
      assert.deepEqual(seen, ['7d4ab8a0-3c1b-4e55-9a7e-2f5d2f0c9b10']);
      void good;
    } finally {
      await worker.stop();
    }
  });

  test('v1 events stored before v2 existed reach a v2 handler upcast', async () => {
    // Yesterday's deploy: order.created had one version, and its producers stored v1 payloads.
    const yesterday = createTypedCrier(catalogBeforeV2);
    const received: CatalogEvent<typeof catalog, 'order.created'>[] = [];
    const fulfilment = crier.subscription({
      name: 'fulfilment',
      topics: ['order.created'],
      handler: (event) => {
        received.push(event);
      },
    });
    const result = await publishAndDrain(db.sql, [fulfilment], async (tx) => {
      await yesterday.publish(tx, 'order.created', { orderId: 'old-1', total: 12.5 });
      await crier.publish(tx, 'order.created', { orderId: 'new-1', amountCents: 700, currency: 'USD' });
    });
    assert.equal(result.done, 2);
    assert.deepEqual(
      received.map((e) => ({ version: e.version, payload: e.payload })),
      [
        { version: 1, payload: { orderId: 'old-1', amountCents: 1250, currency: 'EUR' } },
        { version: 2, payload: { orderId: 'new-1', amountCents: 700, currency: 'USD' } },
      ],
    );
    const versions = await db.sql`SELECT version, payload FROM crier.events WHERE payload->>'orderId' = 'old-1'`;
    assert.deepEqual(versions.map((r) => ({ ...r })), [{ version: 1, payload: { orderId: 'old-1', total: 12.5 } }], 'stored events are never rewritten');
  });

  test('an event newer than the consumer knows is retried, not dead; an uncatalogued topic is poison', async () => {
    const old = createTypedCrier(catalogBeforeV2);
    const legacy = old.subscription({ name: 'legacy', topics: ['order.#'], maxAttempts: 3, handler: () => {} });
    const result = await publishAndDrain(db.sql, [legacy], async (tx) => {
      await crier.publish(tx, 'order.created', { orderId: 'n', amountCents: 1, currency: 'EUR' });
      await crier.publish(tx, 'order.shipped', { orderId: 'n', carrier: 'dhl' });
    });
    assert.deepEqual(
      result.outcomes.map((o) => [o.topic, o.outcome, o.error]),
      [
        ['order.created', 'retry', 'order.created v2 is newer than this catalog knows (v1..v1); deploy the newer catalog to this consumer'],
        ['order.shipped', 'dead', 'PoisonMessageError: topic "order.shipped" is not in this catalog; no schema can read it'],
      ],
    );
  });
});

describe('catalog in SQL', () => {
  test('registerCatalog stores zod JSON Schemas idempotently; list and show read them', async () => {
    const first = await registerCatalog(db.sql, catalog);
    assert.deepEqual(first.added, ['order.created v1', 'order.created v2', 'order.shipped v1', 'payment.captured v1']);
    assert.deepEqual(first.changed, []);
    const again = await crier.register(db.sql);
    assert.deepEqual(again, { added: [], changed: [], uncheckedPatterns: [] });

    const rows = await listCatalog(db.sql);
    // The same through a Drizzle database, as every crier call accepts.
    assert.deepEqual(await listCatalog(drizzle(db.sql)), rows);
    assert.deepEqual(await registerCatalog(drizzle(db.sql), catalog), { added: [], changed: [], uncheckedPatterns: [] });
    assert.deepEqual(
      rows.map((r) => [r.topic, r.latestVersion, r.versions, r.validate, r.description]),
      [
        ['order.created', 2, [1, 2], false, 'An order was placed'],
        ['order.shipped', 1, [1], false, null],
        ['payment.captured', 1, [1], false, null],
      ],
    );
    const shown = await showCatalogEntry(db.sql, 'order.created');
    assert.deepEqual(shown.versionDetails.map((v) => v.version), [1, 2]);
    assert.deepEqual(shown.versionDetails[1]!.jsonSchema.required, ['orderId', 'amountCents', 'currency']);
    assert.deepEqual(shown.versionDetails[1]!.uncheckedPatterns, []);

    const unknown = await rejection(showCatalogEntry(db.sql, 'order.craeted'));
    assert.ok(unknown instanceof CrierError);
    assert.equal(unknown.message, 'CRIER_UNKNOWN_TOPIC: topic "order.craeted" is not in the registered catalog; did you mean "order.created"?');
  });

  test('SQL-side validation rejects a bad payload when on for that topic, accepts it when off', async () => {
    assert.equal(await checkEnabled(), false, 'no topic validated: the check costs nothing');
    await registerCatalog(db.sql, catalog, { validate: ['order.created'] });
    assert.equal(await checkEnabled(), true);
    const bad = `{"orderId": 7}`;
    const before = await eventCount('order.created');

    // From SQL: crier.publish and a direct INSERT are both checked (v1 unless the version is given).
    await assert.rejects(db.sql`SELECT crier.publish('order.created', ${bad}::text::jsonb)`, (error: Error) => {
      assert.equal(error.message, 'CRIER_INVALID_PAYLOAD: order.created v1: payload does not match the registered schema: total: required; orderId: expected string, got number');
      return true;
    });
    await assert.rejects(
      db.sql`INSERT INTO crier.events (topic, version, payload) VALUES ('order.created', 2, '{"orderId": "o", "amountCents": 1, "currency": "eur"}')`,
      /CRIER_INVALID_PAYLOAD: order\.created v2: payload does not match the registered schema: currency: must match the pattern \^\[A-Z\]\{3\}\$/,
    );
    await assert.rejects(
      db.sql`INSERT INTO crier.events (topic, version, payload) VALUES ('order.created', 3, '{}')`,
      /CRIER_INVALID_PAYLOAD: order\.created v3: no such version in the catalog \(registered: v1\.\.v2\)/,
    );
    // Through the library, the same error comes back as a CrierError.
    const plain = createCrier();
    const error = await rejection(db.sql.begin((tx) => plain.publish(tx, 'order.created', JSON.parse(bad))));
    assert.ok(error instanceof CrierError && error.code === 'CRIER_INVALID_PAYLOAD', String(error));
    assert.equal(await eventCount('order.created'), before, 'nothing was written');

    // Valid payloads of either version pass; topics with validation off are not checked.
    await db.sql`SELECT crier.publish('order.created', '{"orderId": "sql-1", "total": 3.5}')`;
    await db.sql`INSERT INTO crier.events (topic, version, payload) VALUES ('order.created', 2, '{"orderId": "sql-2", "amountCents": 350, "currency": "EUR"}')`;
    await db.sql`SELECT crier.publish('order.shipped', '{"whatever": true}')`;

    await setCatalogValidation(db.sql, 'order.created', false);
    assert.equal(await checkEnabled(), false);
    await db.sql`SELECT crier.publish('order.created', ${bad}::text::jsonb)`;
    assert.equal(await eventCount('order.created'), before + 3);
    await assert.rejects(setCatalogValidation(db.sql, 'order.creatd', true), /CRIER_UNKNOWN_TOPIC: .*did you mean "order\.created"\?/);
  });

  test('flags are kept when registering again without validate; false turns them all off', async () => {
    await registerCatalog(db.sql, catalog, { validate: true });
    await registerCatalog(db.sql, catalog);
    assert.deepEqual((await listCatalog(db.sql)).map((r) => r.validate), [true, true, true]);
    await registerCatalog(db.sql, catalog, { validate: false });
    assert.deepEqual((await listCatalog(db.sql)).map((r) => r.validate), [false, false, false]);
  });

  test('crier catalog list|show|validation', async () => {
    const list = await runCli(db.url, ['catalog', 'list']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^TOPIC +LATEST +VERSIONS +SQL VALIDATION +DESCRIPTION\norder\.created +v2 +v1,v2 +off +An order was placed\n/);
    assert.match(list.stdout, /\nunknown topics: allowed/);
    const show = await runCli(db.url, ['catalog', 'show', 'order.created']);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /latest version +v2/);
    assert.match(show.stdout, /v2 JSON Schema:[^]*\nv1 JSON Schema:\n\{\n {2}"\$schema"/, 'latest first, keywords in reading order');
    const json = JSON.parse((await runCli(db.url, ['catalog', 'show', 'order.created', '--json'])).stdout);
    assert.deepEqual(json.versionDetails.map((v: { version: number }) => v.version), [1, 2]);

    const on = await runCli(db.url, ['catalog', 'validation', 'payment.captured', 'on']);
    assert.equal(on.code, 0, on.stderr);
    assert.equal(on.stdout, 'SQL validation of payment.captured is on\n');
    assert.equal((await showCatalogEntry(db.sql, 'payment.captured')).validate, true);
    assertFails(await runCli(db.url, ['catalog', 'show', 'order.creatd']), 1, /^crier catalog show: CRIER_UNKNOWN_TOPIC: .*did you mean "order\.created"\?/);
    assertFails(await runCli(db.url, ['catalog', 'validation', 'payment.captured', 'maybe']), 2, /expected on or off, got "maybe"/);
    assertFails(await runCli(db.url, ['catalog', 'validation', 'payment.captured']), 2, /missing argument: expected <topic> on\|off/);
    assertFails(await runCli(db.url, ['catalog', 'frobnicate']), 2, /unknown command "frobnicate" \(run "crier catalog --help" for usage\)/);
    assert.equal((await showCatalogEntry(db.sql, 'payment.captured')).validate, true, 'usage errors changed nothing');
    await setCatalogValidation(db.sql, 'payment.captured', false);
  });

  test('rejectUnknownTopics: every insert must name a registered topic, with a suggestion', async () => {
    assert.equal(await checkEnabled(), false);
    await registerCatalog(db.sql, catalog, { rejectUnknownTopics: true });
    assert.equal(await checkEnabled(), true);
    await assert.rejects(
      db.sql`SELECT crier.publish('order.shiped', '{}')`,
      /^PostgresError: CRIER_UNKNOWN_TOPIC: topic "order\.shiped" is not in the registered catalog; did you mean "order\.shipped"\?; unknown topics are rejected here/,
    );
    const plain = createCrier();
    const error = await rejection(db.sql.begin((tx) => plain.publishMany(tx, [
      { topic: 'order.shipped', payload: {} },
      { topic: 'inventory.reserved', payload: {} },
    ])));
    assert.ok(error instanceof CrierError && error.code === 'CRIER_UNKNOWN_TOPIC', String(error));
    assert.equal(await eventCount('inventory.reserved'), 0);
    await db.sql`SELECT crier.publish('order.shipped', '{"anything": 1}')`; // registered; its validation is off

    assert.match((await runCli(db.url, ['catalog', 'list'])).stdout, /\nunknown topics: rejected/);
    assertFails(await runCli(db.url, ['catalog', 'unknown-topics', 'off']), 2, /expected reject or allow, got "off"/);
    assert.equal(await checkEnabled(), true, 'a usage error changed nothing');
    const allow = await runCli(db.url, ['catalog', 'unknown-topics', 'allow']);
    assert.equal(allow.code, 0, allow.stderr);
    assert.equal(allow.stdout, 'unknown topics are now allowed\n');
    assert.equal(await checkEnabled(), false, 'nothing left to check: the trigger is off again');
    await db.sql`SELECT crier.publish('inventory.reserved', '{}')`;
    assert.equal(await eventCount('inventory.reserved'), 1);
  });
});

describe('another schema', () => {
  test('catalog, validation trigger and typed crier work in a tenant schema', async () => {
    const tenant = createTypedCrier(catalog, { schema: 'tenant_cat' });
    await tenant.migrate(db.url);
    await tenant.register(db.sql, { validate: ['order.shipped'] });
    await assert.rejects(
      db.sql`SELECT tenant_cat.publish('order.shipped', '{"orderId": "t", "carrier": "fedex"}')`,
      /CRIER_INVALID_PAYLOAD: order\.shipped v1: payload does not match the registered schema: carrier: must be one of "ups", "dhl"/,
    );
    // The default schema's flags are its own.
    await db.sql`SELECT crier.publish('order.shipped', '{"orderId": "t", "carrier": "fedex"}')`;
    const seen: string[] = [];
    const sub = tenant.subscription({ name: 'tenant-shipping', topics: ['order.shipped'], handler: (e) => void seen.push(e.payload.carrier) });
    const result = await publishAndDrain(db.sql, [sub], (tx) => tenant.publish(tx, 'order.shipped', { orderId: 't', carrier: 'ups' }), { schema: 'tenant_cat' });
    assert.deepEqual([result.done, seen], [1, ['ups']]);
    assert.deepEqual((await listCatalog(db.sql, { schema: 'tenant_cat' })).map((r) => [r.topic, r.validate]), [
      ['order.created', false],
      ['order.shipped', true],
      ['payment.captured', false],
    ]);
  });
});

describe('test helpers', () => {
  const shipping = crier.subscription({
    name: 'shipping-helpers',
    topics: ['order.*'],
    handler: (event) => (event.topic === 'order.created' ? `${event.payload.amountCents} ${event.payload.currency}` : event.payload.carrier),
  });

  test('invoke runs a handler on an event in memory, parsing and upcasting like a worker', async () => {
    assert.equal(await invoke(shipping, { topic: 'order.shipped', payload: { orderId: 'o', carrier: 'ups' } }), 'ups');
    assert.equal(await invoke(shipping, { topic: 'order.created', version: 1, payload: { orderId: 'o', total: 2 } }), '200 EUR');
    await assert.rejects(
      invoke(shipping, { topic: 'order.shipped', payload: { orderId: 'o' } }),
      (error: Error) => error instanceof PoisonMessageError && /carrier: Invalid option/.test(error.message),
    );
  });

  test('drain handles due deliveries once and reports retry and dead like a worker', async () => {
    let calls = 0;
    const flaky = crier.subscription({
      name: 'flaky-helpers',
      topics: ['order.shipped'],
      maxAttempts: 2,
      backoff: { base: '1h', max: '1h' },
      handler: () => {
        calls++;
        throw new Error('carrier API down');
      },
    });
    const first = await publishAndDrain(db.url, [flaky], (tx) => crier.publish(tx, 'order.shipped', { orderId: 'f', carrier: 'dhl' }));
    assert.deepEqual([first.done, first.retried, first.dead, calls], [0, 1, 0, 1]);
    assert.equal(first.outcomes[0]!.error, 'carrier API down');
    const second = await drain(db.url, [flaky]);
    assert.deepEqual([second.outcomes.length, calls], [0, 1], 'the retry is not due for an hour');
    await db.sql`UPDATE crier.deliveries SET available_at = now() WHERE subscription = 'flaky-helpers'`;
    const third = await drain(db.url, [flaky]);
    assert.deepEqual([third.dead, calls], [1, 2]);
  });
});
