// A CommonJS consumer: `require` crier and its subpaths.
const { createCrier } = require('crier');
const { kyselyExecutor } = require('crier/kysely');
const postgresModule = require('postgres');
const postgres = postgresModule.default ?? postgresModule; // 4.x is an ES module (require(esm)), 3.x CommonJS

async function main() {
  const url = process.env.DATABASE_URL;
  const topic = `consumer.${process.env.CONSUMER}`;
  const crier = createCrier();
  await crier.migrate(url);
  const sql = postgres(url, { onnotice: () => {} });
  let handled;
  const worker = crier.worker({ connection: url, subscriptions: [{ name: topic.replace('.', '-'), topics: [topic], handler: async (event) => { handled = event; } }] });
  await worker.start();
  try {
    await sql.begin((tx) => crier.publish(tx, topic, { from: 'cjs' }));
    for (let waited = 0; !handled && waited < 30_000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
    const { version } = require('crier/package.json');
    console.log(JSON.stringify({ topic: handled?.topic, payload: handled?.payload, kysely: typeof kyselyExecutor, version }));
  } finally {
    await worker.stop();
    await sql.end();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
