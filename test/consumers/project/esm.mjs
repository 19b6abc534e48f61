// An ES module consumer: `import` from crier and its subpaths.
import postgres from 'postgres';
import { createCrier } from 'crier';
import { knexExecutor } from 'crier/knex';
import { createRequire } from 'node:module';

const url = process.env.DATABASE_URL;
const topic = `consumer.${process.env.CONSUMER}`;
const crier = createCrier();
await crier.migrate(url);
const sql = postgres(url, { onnotice: () => {} });
let handled;
const worker = crier.worker({ connection: url, subscriptions: [{ name: topic.replace('.', '-'), topics: [topic], handler: async (event) => { handled = event; } }] });
await worker.start();
try {
  await sql.begin((tx) => crier.publish(tx, topic, { from: 'esm' }));
  for (let waited = 0; !handled && waited < 30_000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
  const { version } = createRequire(import.meta.url)('crier/package.json');
  console.log(JSON.stringify({ topic: handled?.topic, payload: handled?.payload, knex: typeof knexExecutor, version }));
} finally {
  await worker.stop();
  await sql.end();
}
