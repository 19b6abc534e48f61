// Publishing from the data layers Node teams use, inside their own transactions: node-postgres,
// Kysely, Knex, Prisma (driver adapter) and TypeORM (EntityManager and QueryRunner), on the real
// database. A rollback leaves neither the business row nor the event nor its deliveries; a commit
// leaves all of them, and an idempotent re-publish (a second statement) sees the first.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
import { CamelCasePlugin, Kysely, PostgresDialect, type Generated } from 'kysely';
import knexFactory from 'knex';
import { DataSource } from 'typeorm';
import { PrismaPg } from '@prisma/adapter-pg';
import { type Executor } from '../src/index.ts';
import { createCrier } from './support/history.ts';
import { kyselyExecutor } from '../src/integrations/kysely.ts';
import { knexExecutor } from '../src/integrations/knex.ts';
import { prismaExecutor } from '../src/integrations/prisma.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const crier = createCrier();
let db: TestDatabase;

before(async () => {
  db = await createTestDatabase('data_layers');
  await db.sql`CREATE TABLE orders (id serial PRIMARY KEY, customer text NOT NULL)`;
  await db.sql`INSERT INTO crier.subscriptions (name, topics) VALUES ('audit', '{layer.#}'), ('mail', '{layer.*.created}')`;
});
after(async () => {
  await db.drop();
});

/** Inside the caller's transaction: insert an order, publish two events (one idempotent), re-publish the idempotent one. */
async function business(executor: Executor, layer: string, insertOrder: () => Promise<unknown>) {
  await insertOrder();
  const topic = `layer.${layer}.created`;
  const [first, second] = await crier.publishMany(executor, [
    { topic, payload: { layer, n: 1 }, key: layer },
    { topic, payload: { layer, n: 2 }, idempotencyKey: `${layer}-2` },
  ]);
  const again = await crier.publish(executor, topic, { layer, n: 2 }, { idempotencyKey: `${layer}-2` });
  assert.equal(first!.topic, topic);
  assert.match(first!.id, /^\d+$/);
  assert.ok(first!.createdAt instanceof Date && !Number.isNaN(first!.createdAt.getTime()));
  assert.deepEqual({ id: again.id, duplicate: again.duplicate }, { id: second!.id, duplicate: true });
}

async function counts(layer: string) {
  const [row] = await db.sql`
    SELECT (SELECT count(*)::int FROM orders WHERE customer = ${layer}) AS orders,
           (SELECT count(*)::int FROM crier.events WHERE topic = ${`layer.${layer}.created`}) AS events,
           (SELECT count(*)::int FROM crier.deliveries d JOIN crier.events e ON e.id = d.event_id
             WHERE e.topic = ${`layer.${layer}.created`}) AS deliveries`;
  return row;
}

/**
 * A data layer under test: `transaction(layer, fail)` runs `business` in one of its transactions
 * (throwing at the end when `fail`, so the data layer rolls back).
 */
interface DataLayer {
  transaction(layer: string, fail: boolean): Promise<void>;
  close(): Promise<void>;
}

class Rollback extends Error {}

function checks(name: string, open: () => Promise<DataLayer>) {
  describe(name, () => {
    let layer: DataLayer;
    before(async () => {
      layer = await open();
    });
    after(async () => {
      await layer?.close();
    });

    test('a rollback leaves no order, no event, no delivery', async () => {
      const label = `${name.replace(/\W/g, '_')}_rollback`;
      await assert.rejects(layer.transaction(label, true), Rollback);
      assert.deepEqual(await counts(label), { orders: 0, events: 0, deliveries: 0 });
    });

    test('a commit leaves the order, the events and their deliveries', async () => {
      const label = `${name.replace(/\W/g, '_')}_commit`;
      await layer.transaction(label, false);
      assert.deepEqual(await counts(label), { orders: 1, events: 2, deliveries: 4 });
    });
  });
}

checks('node-postgres client in BEGIN/COMMIT', async () => {
  const pool = new pg.Pool({ connectionString: db.url, max: 2 });
  return {
    async transaction(label, fail) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await business(client, label, () => client.query('INSERT INTO orders (customer) VALUES ($1)', [label]));
        if (fail) throw new Rollback();
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK');
        throw error;
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
});

checks('Kysely transaction (with CamelCasePlugin)', async () => {
  interface Database { orders: { id: Generated<number>; customer: string } }
  const kysely = new Kysely<Database>({
    dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: db.url, max: 2 }) }),
    plugins: [new CamelCasePlugin()],
  });
  return {
    transaction: (label, fail) =>
      kysely.transaction().execute(async (trx) => {
        await business(kyselyExecutor(trx), label, () => trx.insertInto('orders').values({ customer: label }).execute());
        if (fail) throw new Rollback();
      }),
    close: () => kysely.destroy(),
  };
});

checks('Knex transaction', async () => {
  const knex = knexFactory({ client: 'pg', connection: db.url, pool: { min: 0, max: 2 } });
  return {
    transaction: (label, fail) =>
      knex.transaction(async (trx) => {
        await business(knexExecutor(trx), label, () => trx('orders').insert({ customer: label }));
        if (fail) throw new Rollback();
      }),
    close: () => knex.destroy(),
  };
});

test('Knex: question marks in crier SQL stay operators, and a $n used twice is bound twice', async () => {
  const knex = knexFactory({ client: 'pg', connection: db.url, pool: { min: 0, max: 1 } });
  try {
    const result = await knexExecutor(knex).query(`SELECT '{"a": 1}'::jsonb ? $2 AS has, $1::int + $1::int AS twice`, [2, 'a']);
    assert.deepEqual((result as { rows: unknown[] }).rows, [{ has: true, twice: 4 }]);
  } finally {
    await knex.destroy();
  }
});

checks('TypeORM EntityManager (dataSource.transaction)', async () => {
  const dataSource = await new DataSource({ type: 'postgres', url: db.url, poolSize: 2 }).initialize();
  return {
    transaction: (label, fail) =>
      dataSource.transaction(async (manager) => {
        await business(manager, label, () => manager.query('INSERT INTO orders (customer) VALUES ($1)', [label]));
        if (fail) throw new Rollback();
      }),
    close: () => dataSource.destroy(),
  };
});

checks('TypeORM QueryRunner', async () => {
  const dataSource = await new DataSource({ type: 'postgres', url: db.url, poolSize: 2 }).initialize();
  return {
    async transaction(label, fail) {
      const runner = dataSource.createQueryRunner();
      await runner.connect();
      await runner.startTransaction();
      try {
        await business(runner, label, () => runner.query('INSERT INTO orders (customer) VALUES ($1)', [label]));
        if (fail) throw new Rollback();
        await runner.commitTransaction();
      } catch (error) {
        await runner.rollbackTransaction();
        throw error;
      } finally {
        await runner.release();
      }
    },
    close: () => dataSource.destroy(),
  };
});

checks('Prisma interactive transaction (driver adapter pg)', async () => {
  const PrismaClient = await generatedPrismaClient();
  const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: db.url, max: 2 }) });
  return {
    transaction: (label, fail) =>
      prisma.$transaction(async (tx: any) => {
        await business(prismaExecutor(tx), label, () => tx.order.create({ data: { customer: label } }));
        if (fail) throw new Rollback();
      }),
    close: () => prisma.$disconnect(),
  };
});

/**
 * A Prisma client for the orders table, generated into node_modules (so that it finds
 * @prisma/client). `prisma generate` would first download a schema engine it does not use for
 * generating: PRISMA_SCHEMA_ENGINE_BINARY points it at a file that exists instead.
 */
async function generatedPrismaClient(): Promise<any> {
  const folder = `${root}node_modules/.crier-test-prisma`;
  mkdirSync(folder, { recursive: true });
  writeFileSync(`${folder}/schema.prisma`, `
generator client {
  provider = "prisma-client"
  output   = "./client"
}
datasource db {
  provider = "postgresql"
}
model Order {
  id       Int    @id @default(autoincrement())
  customer String
  @@map("orders")
}
`);
  execFileSync(process.execPath, [`${root}node_modules/prisma/build/index.js`, 'generate', '--schema', `${folder}/schema.prisma`], {
    stdio: 'pipe',
    env: { ...process.env, PRISMA_SCHEMA_ENGINE_BINARY: process.execPath, PRISMA_HIDE_UPDATE_MESSAGE: '1', CHECKPOINT_DISABLE: '1' },
  });
  return (await import(pathToFileURL(`${folder}/client/client.ts`).href)).PrismaClient;
}
