// crier/nestjs in a real Nest application (NestFactory.createApplicationContext, no HTTP) against the
// real database: a service publishes through the injected CrierPublisher inside its own
// transaction, decorated provider methods handle the events, a failing handler is retried then
// dead-lettered, and app.close() stops the worker gracefully (the running handler finishes and is acked).
//
// This file runs under tsx (esbuild), which compiles decorators as standard decorators and emits no
// decorator metadata: the providers are factories with explicit `inject`, as they would be in any
// Nest application without emitDecoratorMetadata. The last test compiles a Nest application the way
// teams do (tsc, legacy decorators, emitted metadata: test/fixtures/nestjs-app) and stops it with
// SIGTERM while a handler runs.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { Module, type DynamicModule, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { CrierError, type CrierEvent, type HandlerContext } from '../src/index.ts';
import { publishAndDrain } from './support/history.ts';
import { CrierHandler, CrierModule, CrierPublisher, CrierWorkers, type CrierModuleOptions } from '../src/integrations/nestjs/index.ts';
import { createTestDatabase, deliveryStates, eventually, type TestDatabase } from './support/database.ts';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase('nestjs');
  await db.sql`CREATE TABLE orders (id text PRIMARY KEY)`;
  await db.sql`CREATE TABLE charges (order_id text NOT NULL, attempt int NOT NULL)`;
});
after(async () => {
  await db.drop();
});

/** The application's own database client, as a Nest app would provide it. */
const SQL = Symbol('SQL');

/** A business service: writes an order and publishes its event in one transaction. */
class OrderService {
  constructor(
    private readonly sql: postgres.Sql,
    private readonly publisher: CrierPublisher,
  ) {}

  placeOrder(id: string, { failAfterPublish = false } = {}) {
    return this.sql.begin(async (tx) => {
      await tx`INSERT INTO orders (id) VALUES (${id})`;
      await this.publisher.publish(tx, 'order.created', { orderId: id });
      if (failAfterPublish) throw new Error('order rejected after publishing');
    });
  }

  /** The same through a Drizzle transaction over the same client. */
  placeOrderWithDrizzle(id: string) {
    return drizzle(this.sql).transaction(async (tx) => {
      await tx.execute(`INSERT INTO orders (id) VALUES ('${id}')`);
      await this.publisher.publish(tx, 'order.created', { orderId: id });
    });
  }
}

/** What the handlers saw, for assertions. */
class Journal {
  charged: string[] = [];
  flakyAttempts: number[] = [];
  log: string[] = [];
  slowStarted = deferred();
  slowRelease = deferred();
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

class BillingHandlers {
  constructor(private readonly journal: Journal) {}

  @CrierHandler({ subscription: 'nest-billing', topics: ['order.*'], transactional: true })
  async charge(event: CrierEvent<{ orderId: string }>, ctx: HandlerContext) {
    await ctx.tx`INSERT INTO charges (order_id, attempt) VALUES (${event.payload.orderId}, ${ctx.attempt})`;
    this.journal.charged.push(event.payload.orderId);
  }

  @CrierHandler({ subscription: 'nest-flaky', topics: ['order.created'], maxAttempts: 3, backoff: { base: 10, max: 10 } })
  async notifyPartner(_event: CrierEvent, ctx: HandlerContext) {
    this.journal.flakyAttempts.push(ctx.attempt);
    throw new Error('partner API down');
  }

  @CrierHandler({ subscription: 'nest-slow', topics: ['report.requested'] })
  async buildReport() {
    this.journal.slowStarted.resolve();
    await this.journal.slowRelease.promise;
    this.journal.log.push('handler finished');
  }

  /** Not decorated: never a handler. */
  helper() {
    return 'not a handler';
  }
}

/** Handlers may sit on controllers too. */
class AuditController {
  static seen: string[] = [];

  @CrierHandler({ subscription: 'nest-audit', topics: ['order.created'] })
  record(event: CrierEvent<{ orderId: string }>) {
    AuditController.seen.push(event.payload.orderId);
  }
}

function appModule(crier: DynamicModule, extraProviders: unknown[] = []): new () => unknown {
  @Module({
    imports: [crier],
    controllers: [AuditController],
    providers: [
      { provide: SQL, useFactory: () => postgres(db.url, { max: 4, onnotice: () => {} }) },
      Journal,
      { provide: OrderService, useFactory: (sql: postgres.Sql, publisher: CrierPublisher) => new OrderService(sql, publisher), inject: [SQL, CrierPublisher] },
      { provide: BillingHandlers, useFactory: (journal: Journal) => new BillingHandlers(journal), inject: [Journal] },
      ...(extraProviders as never[]),
    ],
  })
  class AppModule {}
  return AppModule;
}

const options = (): CrierModuleOptions => ({ connection: db.url, logger: false, worker: { pollInterval: '100ms', shutdownTimeout: '10s' } });

describe('crier/nestjs', () => {
  let app: INestApplicationContext;

  before(async () => {
    app = await NestFactory.createApplicationContext(appModule(CrierModule.forRoot(options())), { logger: false, abortOnError: false });
    app.enableShutdownHooks();
    await app.init();
  });
  after(async () => {
    await app?.close();
    await app?.get<postgres.Sql>(SQL).end({ timeout: 1 });
  });

  test('the decorated methods become the subscriptions of one worker, started at bootstrap', async () => {
    const workers = app.get(CrierWorkers);
    assert.deepEqual(workers.subscriptions.map((s) => s.name).sort(), ['nest-audit', 'nest-billing', 'nest-flaky', 'nest-slow']);
    assert.ok(workers.worker, 'a worker runs');
    const rows = await db.sql`SELECT name, topics, max_attempts FROM crier.subscriptions ORDER BY name`;
    assert.deepEqual(rows.map((r) => ({ ...r })), [
      { name: 'nest-audit', topics: ['order.created'], max_attempts: 5 },
      { name: 'nest-billing', topics: ['order.*'], max_attempts: 5 },
      { name: 'nest-flaky', topics: ['order.created'], max_attempts: 3 },
      { name: 'nest-slow', topics: ['report.requested'], max_attempts: 5 },
    ]);
  });

  test('publishing inside the caller\'s transaction: committed orders are handled, a rolled-back one leaves nothing', async () => {
    const orders = app.get(OrderService);
    const journal = app.get(Journal);
    await orders.placeOrder('o-1');
    await assert.rejects(orders.placeOrder('o-rolled-back', { failAfterPublish: true }), /order rejected after publishing/);
    await orders.placeOrderWithDrizzle('o-2');
    await eventually(async () => (await deliveryStates(db.sql, 'nest-billing')).done === 2, 10_000, 'both orders charged');
    assert.deepEqual(journal.charged.sort(), ['o-1', 'o-2']);
    await eventually(async () => (await deliveryStates(db.sql, 'nest-audit')).done === 2, 10_000, 'both orders audited');
    assert.deepEqual(AuditController.seen.sort(), ['o-1', 'o-2']);
    const events = await db.sql`SELECT payload->>'orderId' AS id FROM crier.events WHERE topic = 'order.created' ORDER BY id`;
    assert.deepEqual(events.map((e) => e.id), ['o-1', 'o-2'], 'the rolled-back order published nothing');
    const charges = await db.sql`SELECT order_id FROM charges ORDER BY order_id`;
    assert.deepEqual(charges.map((c) => c.order_id), ['o-1', 'o-2'], 'the transactional handler\'s writes committed with its ack');
  });

  test('a failing handler is retried, then dead-lettered with its error', async () => {
    const journal = app.get(Journal);
    await eventually(async () => (await deliveryStates(db.sql, 'nest-flaky')).dead === 2, 15_000, 'both deliveries dead');
    const dead = await db.sql`SELECT attempts, last_error FROM crier.deliveries WHERE subscription = 'nest-flaky'`;
    assert.deepEqual(dead.map((d) => ({ ...d })), [
      { attempts: 3, last_error: 'partner API down' },
      { attempts: 3, last_error: 'partner API down' },
    ]);
    assert.deepEqual(journal.flakyAttempts.sort(), [1, 1, 2, 2, 3, 3]);
  });

  test('app.close() stops the worker gracefully: the running handler finishes and is acked before close resolves', async () => {
    const journal = app.get(Journal);
    const publisher = app.get(CrierPublisher);
    await publisher.publish(db.sql, 'report.requested', { month: '2026-11' });
    await journal.slowStarted.promise;
    const closed = app.close().then(() => journal.log.push('application closed'));
    // Give close every chance to finish early if it did not wait for the handler.
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(journal.log, [], 'close waits while the handler runs');
    journal.slowRelease.resolve();
    await closed;
    assert.deepEqual(journal.log, ['handler finished', 'application closed']);
    assert.deepEqual(await deliveryStates(db.sql, 'nest-slow'), { done: 1 }, 'acked, not handed back');
    assert.equal(app.get(CrierWorkers).worker, undefined);
    const [{ n } = { n: -1 }] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = ${db.name} AND pid <> pg_backend_pid() AND query ILIKE 'LISTEN%'`;
    assert.equal(n, 0, 'the worker\'s LISTEN connection is closed');
  });
});

describe('crier/nestjs configuration', () => {
  test('forRootAsync builds the options from injected providers (a config service)', async () => {
    class Config {
      get = (key: string) => ({ DATABASE_URL: db.url, CRIER_WORKERS: 'false' })[key];
    }
    @Module({ providers: [Config], exports: [Config] })
    class ConfigModule {}
    const crier = CrierModule.forRootAsync({
      imports: [ConfigModule],
      inject: [Config],
      useFactory: (config: Config) => ({ connection: config.get('DATABASE_URL'), workers: config.get('CRIER_WORKERS') !== 'false', logger: false }),
    });
    const app = await NestFactory.createApplicationContext(appModule(crier), { logger: false, abortOnError: false });
    try {
      assert.equal(app.get(CrierWorkers).worker, undefined, 'workers: false publishes only');
      assert.equal(app.get(CrierWorkers).subscriptions.length, 4);
      const event = await app.get(CrierPublisher).publish(db.sql, 'async.configured', { ok: true });
      const [row] = await db.sql`SELECT topic FROM crier.events WHERE id = ${event.id}`;
      assert.equal(row!.topic, 'async.configured');
      // Without a worker, crier/testing runs the discovered handlers (with the app's providers).
      const billing = app.get(CrierWorkers).subscriptions.filter((s) => s.name === 'nest-billing');
      const result = await publishAndDrain(db.sql, billing, (tx) => app.get(CrierPublisher).publish(tx, 'order.created', { orderId: 'o-drained' }));
      assert.deepEqual([result.done, result.retried, result.dead], [1, 0, 0]);
      assert.deepEqual(app.get(Journal).charged, ['o-drained']);
      assert.equal((await db.sql`SELECT count(*)::int AS n FROM charges WHERE order_id = 'o-drained'`)[0]!.n, 1);
    } finally {
      await app.close();
      await app.get<postgres.Sql>(SQL).end({ timeout: 1 });
    }
  });

  test('two methods handling one subscription, or handlers without a connection, fail bootstrap clearly', async () => {
    class Duplicate {
      @CrierHandler({ subscription: 'nest-billing', topics: ['order.*'] })
      again() {}
    }
    const bootstrap = async (crier: DynamicModule, extra: unknown[]) => {
      const app = await NestFactory.createApplicationContext(appModule(crier, extra), { logger: false, abortOnError: false });
      await app.get<postgres.Sql>(SQL).end({ timeout: 1 });
      await app.close();
    };
    await assert.rejects(
      bootstrap(CrierModule.forRoot({ ...options(), workers: true }), [Duplicate]),
      (error: Error) => error instanceof CrierError && /subscription "nest-billing" is handled by both BillingHandlers\.charge and Duplicate\.again/.test(error.message),
    );
    await assert.rejects(
      bootstrap(CrierModule.forRoot({ logger: false }), []),
      (error: Error) => error instanceof CrierError && /no connection for their worker/.test(error.message),
    );
  });

  test('a bad topic pattern fails when the class is declared, naming the pattern', () => {
    assert.throws(
      () => CrierHandler({ subscription: 'bad', topics: ['order.**'] }),
      (error: Error) => error instanceof CrierError && error.code === 'CRIER_INVALID_PATTERN',
    );
  });

  test('the decorator also works as a legacy (experimentalDecorators) method decorator', () => {
    class Legacy {
      handle() {}
    }
    const descriptor = Object.getOwnPropertyDescriptor(Legacy.prototype, 'handle')!;
    CrierHandler({ subscription: 'legacy', topics: ['a.b'] })(Legacy.prototype, 'handle', descriptor);
    assert.throws(
      () => (CrierHandler({ subscription: 'legacy', topics: ['a.b'] }) as (...args: unknown[]) => void)(Legacy, undefined, undefined),
      /decorates a method, not a class/,
    );
  });
});

describe('a Nest application compiled with tsc (legacy decorators, emitted metadata)', () => {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const fixture = `${root}test/fixtures/nestjs-app`;
  let build: string;
  before(async () => {
    await db.sql`CREATE TABLE app_orders (id text PRIMARY KEY, fulfilled boolean NOT NULL DEFAULT false)`;
    // Inside the repository, so the compiled app resolves packages from its node_modules.
    build = mkdtempSync(`${fixture}/.build-`);
    // Type-checked by `npm run typecheck`; here only emitted, as `nest build` would.
    execFileSync(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '-p', `${fixture}/tsconfig.json`, '--noCheck', '--outDir', build], { stdio: 'inherit' });
  });
  after(() => rmSync(build, { recursive: true, force: true }));

  test('SIGTERM while a handler runs: the handler finishes and commits before the application\'s own client closes', async () => {
    const child = spawn(process.execPath, [`${build}/test/fixtures/nestjs-app/main.js`], {
      env: { ...process.env, DATABASE_URL: db.url, NO_COLOR: '1', NODE_TEST_CONTEXT: undefined },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('exit', (c, s) => resolve([c, s])));
    const lines = output.split('\n').filter((line) => /app: |\[Crier\]/.test(line)).map((line) => line.replace(/^.*?(app: |\[Crier\] )/, '$1').replace(/worker \S+/, 'worker').replace(/ workerId=.*$/, '')); // the record's fields follow its message
    assert.equal(signal, 'SIGTERM', `the application stopped on its signal (exit code ${code}); output:\n${output}`);
    assert.deepEqual(lines, [
      '[Crier] worker started: app-fulfilment (x10)',
      'app: started',
      'app: handling first',
      'app: handled first',
      'app: handling second',
      '[Crier] waiting up to 10000ms for 1 running handlers',
      'app: handled second',
      '[Crier] worker stopped',
      'app: database client closed',
    ]);
    assert.deepEqual((await db.sql`SELECT id, fulfilled FROM app_orders ORDER BY id`).map((r) => ({ ...r })), [
      { id: 'first', fulfilled: true },
      { id: 'second', fulfilled: true },
    ]);
    assert.deepEqual(await deliveryStates(db.sql, 'app-fulfilment'), { done: 2 });
  });
});
