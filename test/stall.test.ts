// A worker behind a network that goes silent (test/support/stall-proxy.ts): its queries get no
// answer and no error, so only its deadlines can notice. The worker must replace its database
// client and its LISTEN connection, say so in its log, and handle events again once new
// connections get through, while the old ones stay open and silent (or are reset).
// Causality only: the timeouts below are generous upper bounds, not timing assertions.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import postgres from 'postgres';
import { type Worker } from '../src/index.ts';
import { createCrier } from './support/history.ts';
import { toLogger } from '../src/logger.ts';
import { ReplaceableClient } from '../src/worker/client.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/database.ts';
import { StallProxy } from './support/stall-proxy.ts';

const crier = createCrier();
let db: TestDatabase;
const cleanups: (() => Promise<unknown>)[] = [];

before(async () => {
  db = await createTestDatabase('stall');
});
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  await db.drop();
});

async function stalledWorker(subscription: string, connection: (proxyUrl: string) => string | postgres.Sql) {
  const proxy = await StallProxy.start(db.url);
  cleanups.push(() => proxy.close());
  const lines: string[] = [];
  const log = (line: string) => lines.push(line);
  const handled: string[] = [];
  const worker: Worker = crier.worker({
    connection: connection(proxy.url(db.url)),
    pollInterval: '200ms',
    queryTimeout: '1s',
    listenHealthInterval: '300ms',
    handleSignals: false,
    logger: { info: log, warn: log, error: log },
    subscriptions: [{ name: subscription, topics: [`${subscription}.#`], handler: (event) => void handled.push(event.id) }],
  });
  await worker.start();
  cleanups.push(() => worker.stop());
  const publish = async () => (await crier.publish(db.sql, `${subscription}.item`, {})).id;
  const first = await publish();
  await eventually(() => handled.includes(first), 20_000, 'an event handled before the stall');
  return { proxy, lines, handled, publish };
}

test('a worker whose network goes silent replaces its clients and handles again once new connections pass', async () => {
  const { proxy, lines, handled, publish } = await stalledWorker('stall-new', (url) => url);
  proxy.stall();
  const during = await publish();
  // The deadline, not an error, is what notices: both the claim client and the LISTEN connection.
  await eventually(() => lines.some((l) => /database client replaced: .* got no answer within 1000ms/.test(l)), 30_000, 'the client replacement logged');
  await eventually(() => lines.some((l) => /LISTEN connection lost \(CRIER_CONNECTION: LISTEN health check: no answer from Postgres within 1000ms/.test(l)), 30_000, 'the LISTEN replacement logged').catch((error) => {
    throw new Error(`${error.message}; the worker said:\n${lines.join('\n')}`);
  });
  assert.ok(!handled.includes(during), 'nothing can be handled while the network is silent');
  proxy.healNewOnly(); // the stalled connections stay open, and say nothing
  const after = await publish();
  await eventually(() => handled.includes(during) && handled.includes(after), 30_000, 'events published during and after the stall handled');
  await eventually(() => lines.some((l) => /LISTEN connection restored/.test(l)), 30_000, 'LISTEN restored');
  await eventually(() => lines.some((l) => /database answering again after \d+ client replacements?/.test(l)), 30_000, 'the recovery logged');
});

test('a worker given its own postgres.js client goes on with a client of its own when that one goes silent', async () => {
  const { proxy, lines, handled, publish } = await stalledWorker('stall-reset', (url) => {
    const sql = postgres(url, { max: 4, onnotice: () => {} });
    cleanups.push(() => sql.end({ timeout: 0 }));
    return sql;
  });
  proxy.stall();
  const during = await publish();
  await eventually(() => lines.some((l) => /database client replaced: .*it was the one you passed/.test(l)), 30_000, 'the replacement of the caller’s client logged');
  assert.ok(proxy.healByReset() > 0, 'stalled connections were reset');
  const after = await publish();
  await eventually(() => handled.includes(during) && handled.includes(after), 30_000, 'events published during and after the stall handled');
});

test('while the database stays silent, each failed round trip replaces the client, but the log says so once', async () => {
  const proxy = await StallProxy.start(db.url);
  cleanups.push(() => proxy.close());
  const lines: string[] = [];
  const open = () => postgres(proxy.url(db.url), { max: 1, onnotice: () => {}, fetch_types: false });
  const opened: postgres.Sql[] = [];
  const client = new ReplaceableClient(open(), {
    queryTimeoutMs: 300,
    open: () => opened[opened.push(open()) - 1]!,
    ownsFirst: true,
    graceMs: 0,
    // Internal parts get a logger that takes fields (the worker adapts yours with toLogger).
    logger: toLogger({ info: (l: string) => lines.push(l), warn: (l: string) => lines.push(l), error: (l: string) => lines.push(l) }),
  });
  cleanups.push(() => client.end(0));
  await client.run('first', (sql) => sql`SELECT 1`);
  proxy.stall();
  for (let i = 0; i < 4; i++) {
    await assert.rejects(client.run(`query ${i}`, (sql) => sql`SELECT 1`), /no answer from Postgres within 300ms/);
  }
  assert.equal(opened.length, 4, 'a fresh client after each missed deadline');
  assert.deepEqual(lines, ['database client replaced: query 0 got no answer within 300ms; the old client is ended, not reused reason="query 0 got no answer within 300ms"']);
  proxy.healNewOnly();
  // The client of the last replacement connected during the stall: silent for ever, replaced once more.
  await eventually(() => client.run('after', (sql) => sql`SELECT 1`).then(() => true), 20_000, 'an answer after the heal');
  assert.equal(lines.length, 2, lines.join('\n'));
  assert.match(lines[1]!, /^database answering again after ([45]) client replacements replacements=\1$/);
});

test('a transactional handler whose connection goes silent mid-transaction does not hold its delivery for ever', async () => {
  // The server keeps the transaction of a silent client open (with its locks) until it notices the
  // dead connection: hours, with default TCP keepalives. crier asks it to end an idle transaction
  // after the handler's timeout and a margin, so the failure can be recorded and the retry run.
  const proxy = await StallProxy.start(db.url);
  cleanups.push(() => proxy.close());
  const lines: string[] = [];
  const log = (line: string) => lines.push(line);
  const attempts: number[] = [];
  const worker: Worker = crier.worker({
    connection: proxy.url(db.url),
    pollInterval: '200ms',
    queryTimeout: '1s',
    listenHealthInterval: '500ms',
    handleSignals: false,
    logger: { info: log, warn: log, error: log },
    subscriptions: [
      {
        name: 'stall-tx',
        topics: ['stall-tx.#'],
        transactional: true,
        timeout: '1s',
        backoff: { base: '10ms', max: '10ms' },
        handler: async (_event, ctx) => {
          attempts.push(ctx.attempt);
          if (ctx.attempt > 1) return;
          // Locks the delivery's row in the handler's transaction, as its ack will.
          await ctx.tx`SELECT 1 FROM crier.deliveries WHERE id = ${ctx.deliveryId} FOR UPDATE`;
          proxy.stall();
          await new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)));
        },
      },
    ],
  });
  await worker.start();
  cleanups.push(() => worker.stop());
  await crier.publish(db.sql, 'stall-tx.item', {});
  await eventually(() => attempts.length === 1, 20_000, 'the first attempt started');
  await eventually(() => lines.some((l) => /database client replaced/.test(l)), 30_000, 'the stall noticed');
  proxy.healNewOnly(); // the transaction's connection stays open and silent
  await eventually(() => attempts.includes(2), 30_000, 'the second attempt, once the server ended the silent transaction').catch((error) => {
    throw new Error(`${error.message}; the worker said:\n${lines.join('\n')}`);
  });
});
