// crier end to end: an order service publishes order events inside its own order transactions;
// an inventory subscription ("order.*") and an email subscription ("order.created") consume them.
// Some handlings fail: a flaky warehouse recovers on retry, a bouncing mailbox ends as a dead letter.
//
//   npm run demo                        # on a throwaway embedded Postgres
//   DATABASE_URL=postgres://... npm run demo   # on your database (schema "crier", table demo_orders)
import postgres from 'postgres';
import { createCrier, type CrierEvent, type Logger } from '../src/index.ts';
import { startEmbeddedPostgres, type EmbeddedDatabase } from './support/embedded-postgres.ts';

interface OrderCreated {
  orderId: number;
  customer: string;
  email: string;
  items: { sku: string; quantity: number }[];
}

const crier = createCrier();
const say = (line: string) => console.log(line);
const workerLog: Logger = {
  info: () => {},
  warn: (m) => say(`  [worker] ${m}`),
  error: (m) => say(`  [worker] error: ${m}`),
};

let embedded: EmbeddedDatabase | undefined;
let sql: postgres.Sql | undefined;

async function main(): Promise<void> {
  let url = process.env.DATABASE_URL;
  if (!url) {
    say('No DATABASE_URL: starting an embedded Postgres for this demo...');
    embedded = await startEmbeddedPostgres(say);
    url = embedded.url;
    say(`  embedded Postgres listening on 127.0.0.1:${embedded.port} (deleted when the demo ends)`);
  }
  sql = postgres(url, { max: 5, onnotice: () => {} });

  const { applied } = await crier.migrate(url);
  say(applied.length > 0 ? `Migrated schema "crier": ${applied.join(', ')}` : 'Schema "crier" is up to date');
  await sql`CREATE TABLE IF NOT EXISTS demo_orders (
    id serial PRIMARY KEY, customer text NOT NULL, email text NOT NULL, items jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now())`;

  const worker = crier.worker({
    connection: url,
    logger: workerLog,
    pollInterval: '1s',
    handleSignals: false, // the demo shuts down itself, embedded Postgres included
    subscriptions: [
      {
        name: 'inventory',
        topics: ['order.*'],
        maxAttempts: 4,
        backoff: { base: '100ms', max: '1s' },
        handler: async (event: CrierEvent<OrderCreated>, ctx) => {
          // The warehouse API times out on the first try for every third order, then recovers.
          if (event.topic === 'order.created' && event.payload.orderId % 3 === 0 && ctx.attempt === 1) {
            say(`  inventory  ${event.topic} #${event.key}: warehouse timed out (attempt ${ctx.attempt}), will retry`);
            throw new Error('warehouse API timed out');
          }
          say(`  inventory  ${event.topic} #${event.key}: ${describeStockChange(event)} (attempt ${ctx.attempt})`);
        },
      },
      {
        name: 'email',
        topics: ['order.created'],
        maxAttempts: 3,
        backoff: { base: '100ms', max: '400ms' },
        handler: async (event: CrierEvent<OrderCreated>, ctx) => {
          if (event.payload.email.endsWith('@bounce.example')) {
            say(`  email      order #${event.key}: ${event.payload.email} bounced (attempt ${ctx.attempt}/${ctx.maxAttempts})`);
            throw new Error(`mailbox ${event.payload.email} unavailable (550)`);
          }
          say(`  email      order #${event.key}: confirmation sent to ${event.payload.email}`);
        },
      },
    ],
  });
  await worker.start();
  say('Worker started: inventory (order.*), email (order.created)\n');

  say('Order service: each order and its event commit in one transaction');
  const published: string[] = [];
  const customers = ['ada', 'grace', 'linus', 'margaret', 'ken', 'barbara'];
  for (const [i, customer] of customers.entries()) {
    const email = customer === 'ken' ? 'ken@bounce.example' : `${customer}@example.com`;
    published.push(await placeOrder(customer, email, [{ sku: `sku-${i + 1}`, quantity: i + 1 }]));
  }

  say('Order service: a payment is declined, so the order transaction rolls back: no order, no event');
  await placeOrder('mallory', 'mallory@example.com', [{ sku: 'sku-9', quantity: 1 }], { declinePayment: true }).catch(
    (error: Error) => say(`  rolled back: ${error.message}`),
  );

  say('Plain SQL can publish too (psql, another language, a trigger): crier.publish(topic, payload, key)');
  const [cancel] = await sql<{ id: string }[]>`
    SELECT crier.publish('order.cancelled', ${sql.json({ orderId: 1, reason: 'customer request' })}, '1')::text AS id`;
  published.push(cancel!.id);
  say(`  published order.cancelled as event ${cancel!.id}: inventory (order.*) gets it, email (order.created) does not\n`);

  await waitUntilSettled(published);
  await worker.stop();

  say('\nSummary (this run):');
  const summary = await sql`
    SELECT d.subscription,
           count(*) FILTER (WHERE d.state = 'done')::int AS done,
           count(*) FILTER (WHERE d.state = 'done' AND d.attempts > 1)::int AS "done after retry",
           count(*) FILTER (WHERE d.state = 'dead')::int AS dead
    FROM crier.deliveries d
    WHERE d.event_id = ANY(${published}::bigint[])
    GROUP BY d.subscription ORDER BY d.subscription`;
  console.table(summary.map((row) => ({ ...row })));

  const deadLetters = `SELECT delivery_id, subscription, topic, key, attempts, last_error
FROM crier.dead_letters ORDER BY died_at`;
  say(`An operator finds the dead letters with plain SQL (or: npx crier dead list):\n\n${deadLetters};\n`);
  const dead = await sql.unsafe(deadLetters);
  console.table(dead.map((row) => ({ ...row })));
  say('Fix the cause, then move them back to pending, attempts reset (workers wake at once):');
  say('  npx crier requeue --subscription email        or in SQL:');
  say("  SELECT * FROM crier.requeue(p_subscription => 'email');");
}

async function placeOrder(
  customer: string,
  email: string,
  items: OrderCreated['items'],
  options: { declinePayment?: boolean } = {},
): Promise<string> {
  return sql!.begin(async (tx) => {
    const [order] = await tx<{ id: number }[]>`
      INSERT INTO demo_orders (customer, email, items) VALUES (${customer}, ${email}, ${tx.json(items)}) RETURNING id`;
    const event = await crier.publish(tx, 'order.created', { orderId: order!.id, customer, email, items }, { key: String(order!.id) });
    if (options.declinePayment) throw new Error(`payment declined for order #${order!.id}`);
    say(`  order #${order!.id} for ${customer} committed with event ${event.id} (order.created)`);
    return event.id;
  });
}

function describeStockChange(event: CrierEvent<OrderCreated>): string {
  if (event.topic !== 'order.created') return 'stock released';
  return `reserved ${event.payload.items.map((item) => `${item.quantity} x ${item.sku}`).join(', ')}`;
}

/** Waits until every delivery of the given events is done or dead. */
async function waitUntilSettled(eventIds: string[]): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const [{ open }] = (await sql!`
      SELECT count(*)::int AS open FROM crier.deliveries
      WHERE event_id = ANY(${eventIds}::bigint[]) AND state NOT IN ('done', 'dead')`) as unknown as [{ open: number }];
    if (open === 0) return;
    if (Date.now() > deadline) throw new Error(`${open} deliveries still open after 30s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function shutdown(): Promise<void> {
  await sql?.end({ timeout: 2 });
  if (embedded) {
    await embedded.stop();
    say('Embedded Postgres stopped and its data deleted.');
  }
}

process.once('SIGINT', () => void shutdown().finally(() => process.exit(130)));
let exitCode = 0;
try {
  await main();
} catch (error) {
  exitCode = 1;
  console.error(`demo failed: ${error instanceof Error ? error.message : String(error)}`);
}
await shutdown();
// Explicit: embedded-postgres's exit hooks would otherwise turn a failure into exit code 0.
process.exit(exitCode);
