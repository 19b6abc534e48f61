// The README's demo must keep working: on a given database, and on its own embedded Postgres.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { spawnTs } from './support/processes.ts';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase('demo', { migrate: false });
});
after(async () => {
  await db.drop();
});

function checkStory(output: string) {
  assert.match(output, /order #1 for ada committed/);
  assert.match(output, /rolled back: payment declined/);
  assert.match(output, /inventory {2}order\.created #3: reserved 3 x sku-3 \(attempt 2\)/, 'a failed attempt is retried');
  assert.match(output, /ken@bounce\.example bounced \(attempt 3\/3\)/);
  assert.match(output, /'email'\s+│ 5\s+│ 0\s+│ 1/, 'email: 5 done, 1 dead');
  assert.match(output, /'inventory'\s+│ 7\s+│ 2\s+│ 0/, 'inventory: 7 done, 2 after a retry');
  assert.match(output, /mailbox ken@bounce\.example unavailable \(550\)/);
}

test('the demo runs on the database DATABASE_URL names', async () => {
  const demo = spawnTs('../examples/demo.ts', { DATABASE_URL: db.url });
  const exit = await demo.exited;
  assert.equal(exit.code, 0, demo.output());
  checkStory(demo.output());
  const [{ orders }] = (await db.sql`SELECT count(*)::int AS orders FROM demo_orders`) as unknown as [{ orders: number }];
  assert.equal(orders, 6, 'the rolled back order left nothing');
});

test('without DATABASE_URL the demo brings its own Postgres and takes it down again', async () => {
  const demo = spawnTs('../examples/demo.ts', { DATABASE_URL: undefined });
  const exit = await demo.exited;
  assert.equal(exit.code, 0, demo.output());
  checkStory(demo.output());
  assert.match(demo.output(), /Embedded Postgres stopped and its data deleted/);
});

test('an unreachable DATABASE_URL gets one clear line and a non-zero exit', async () => {
  const demo = spawnTs('../examples/demo.ts', { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nowhere' });
  const exit = await demo.exited;
  assert.equal(exit.code, 1);
  assert.equal(demo.output().trim(), 'demo failed: CRIER_CONNECTION: cannot connect to Postgres (127.0.0.1:1): connection refused. Is the server running, and is DATABASE_URL right?');
});
