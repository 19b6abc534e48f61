// What a worker keeps while it drains: nothing of the deliveries it has finished. Held in a Map or
// a Set, finished deliveries stayed reachable through young GCs once a full GC had promoted the
// collection's table (V8 keeps a rehashed table's entries, linked to the next table), so every
// claimed row was promoted to the old generation. Measured with V8's own GC trace: bytes promoted
// per delivery while a worker drains at batchSize 500, in a process of its own.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createCrier, silentLogger } from '../src/index.ts';
import { spawnTs } from './support/processes.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

const crier = createCrier();
const count = 20_000;
let db: TestDatabase;
before(async () => {
  db = await createTestDatabase('worker_retention');
});
after(async () => {
  await db.drop();
});

test('a draining worker promotes well under the deliveries it handled (finished rows die young)', async () => {
  const declare = crier.worker({ connection: db.url, logger: silentLogger, handleSignals: false, subscriptions: [{ name: 'retention', topics: ['retention.#'], handler: () => {} }] });
  await declare.start();
  await declare.stop();
  const payload = { orderId: 'ord_2n9c', customer: { id: 4242, tier: 'gold', country: 'SE' }, lines: [{ sku: 'SKU-1001', qty: 2 }], note: 'two hundred bytes or so of payload' };
  for (let i = 0; i < count; i += 1000) {
    await crier.publishMany(db.sql, Array.from({ length: 1000 }, (_, k) => ({ topic: 'retention.x', payload: { ...payload, i: i + k } })));
  }
  const child = spawnTs('fixtures/drain-gc.ts', { CRIER_URL: db.url, COUNT: String(count) });
  const { code } = await child.exited;
  assert.equal(code, 0, child.output());
  const lines = child.output().split('\n');
  const from = lines.indexOf('drain starts');
  const to = lines.indexOf('drain ends');
  assert.ok(from >= 0 && to > from, 'the drain was marked');
  const scavenges = lines.slice(from, to).filter((line) => / gc=s /.test(line));
  assert.ok(scavenges.length > 0 && scavenges.every((line) => / promoted=\d+ /.test(line)), 'young GCs with their promoted bytes');
  const promoted = scavenges.reduce((sum, line) => sum + Number(/ promoted=(\d+) /.exec(line)![1]), 0);
  // A delivery's row, payload parsed, is about 1 KiB. Held in a Map and a Set, 369 bytes per delivery
  // were promoted here; in arrays 29-43 (what is live at a young GC: the batches in hand).
  const perDelivery = promoted / count;
  assert.ok(perDelivery < 200, `promoted ${perDelivery.toFixed(0)} bytes per delivery (${scavenges.length} young GCs)`);
});
