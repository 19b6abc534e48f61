// A consumer's first program, as the README shows it: migrate, publish inside a transaction, a
// worker handles the event. Compiled by each TypeScript setup under test (strict, no skipLibCheck).
import postgres from 'postgres';
import { createCrier, type CrierEvent, type Executor } from 'crier';
import { prismaExecutor, type PrismaLike } from 'crier/prisma';

async function main(): Promise<void> {
  const url = process.env.DATABASE_URL!;
  const topic = `consumer.${process.env.CONSUMER!}`;
  const crier = createCrier();
  await crier.migrate(url);

  const sql = postgres(url, { onnotice: () => {} });
  let handled: CrierEvent | undefined;
  const worker = crier.worker({
    connection: url,
    subscriptions: [{ name: topic.replace('.', '-'), topics: [topic], handler: async (event) => { handled = event; } }],
  });
  await worker.start();
  try {
    await sql.begin(async (tx) => {
      await crier.publish(tx, topic, { from: 'typescript' });
    });
    const executors: Executor[] = [sql, prismaExecutor({ $queryRawUnsafe: async () => [] } satisfies PrismaLike)];
    for (let waited = 0; !handled && waited < 30_000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
    console.log(JSON.stringify({ topic: handled?.topic, payload: handled?.payload, executors: executors.length }));
  } finally {
    await worker.stop();
    await sql.end();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
