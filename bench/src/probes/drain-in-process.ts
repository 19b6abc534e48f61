// Probe: a crier worker draining N pre-published events inside this process (no IPC, no child
// process), reporting events/s and the worker process's own CPU per event. Used to compare worker
// changes side by side; the bench's drain scenario gives the figures to quote.
//   node --import tsx bench/src/probes/drain-in-process.ts [N] [batchSize] [concurrency]
import postgres from 'postgres';
import { createCrier, silentLogger } from '../../../src/index.ts';
import { createDatabase, dropDatabase, sharedServerUrl } from '../database.ts';
import { makePayload } from '../payload.ts';

const count = Number(process.argv[2] ?? 50_000);
const batchSize = Number(process.argv[3] ?? 500);
const concurrency = Number(process.argv[4] ?? 10);

const url = await createDatabase(sharedServerUrl, 'probe_drain');
const crier = createCrier();
const sql = postgres(url, { max: 4, onnotice: () => {}, fetch_types: false });
try {
  await crier.migrate(url);
  let handled = 0;
  let allHandled!: () => void;
  const finished = new Promise<void>((resolve) => (allHandled = resolve));
  const subscription = { name: 's', topics: ['t'], concurrency, batchSize, handler: () => void (++handled === count && allHandled()) };
  const options = { connection: url, logger: silentLogger, handleSignals: false, subscriptions: [subscription] };
  const declare = crier.worker(options); // declares the subscription, so the events fan out to it
  await declare.start();
  await declare.stop();
  for (let i = 0; i < count; i += 1000) {
    await crier.publishMany(sql, Array.from({ length: Math.min(1000, count - i) }, (_, k) => ({ topic: 't', payload: makePayload(i + k) })));
  }
  await sql`VACUUM ANALYZE`;

  const startedAt = performance.now();
  const cpuBefore = process.cpuUsage();
  const worker = crier.worker(options);
  await worker.start();
  await finished;
  while ((await sql`SELECT 1 FROM crier.deliveries WHERE state <> 'done' LIMIT 1`).length > 0) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const ms = performance.now() - startedAt;
  const cpu = process.cpuUsage(cpuBefore);
  await worker.stop();
  console.log(
    `drained ${count} in ${ms.toFixed(0)} ms = ${((count / ms) * 1000).toFixed(0)}/s (batchSize ${batchSize}, concurrency ${concurrency}); ` +
      `worker process CPU ${((cpu.user + cpu.system) / count).toFixed(1)} µs/event`,
  );
} finally {
  await sql.end();
  await dropDatabase(url);
}
