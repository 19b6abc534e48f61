// Probe: what a running worker costs crier's publish-single, and how many NOTIFYs producers send.
// Publishes N events (one per transaction, 8 in flight) three times in one fresh database: with no
// worker, with a crier worker at its defaults, and with one at concurrency 100; a separate LISTEN
// connection counts the notifications on crier's channel.
//   node --import tsx bench/src/probes/publish-wakeups.ts [N]
import postgres from 'postgres';
import { adapter } from '../adapters/crier.ts';
import { now } from '../clock.ts';
import { createDatabase, dropDatabase, sharedServerUrl } from '../database.ts';
import { makePayload } from '../payload.ts';
import { inFlight, singleQueue } from '../scenarios/scenario.ts';
import { WorkerHandle } from '../worker-handle.ts';

const count = Number(process.argv[2] ?? 3000);
const url = await createDatabase(sharedServerUrl, 'probe_wakeups');
const listener = postgres(url, { max: 1, onnotice: () => {} });
try {
  await adapter.install(url, singleQueue, {});
  let notifications = 0;
  await listener.listen('crier', () => void notifications++);
  let next = 0;
  for (const setting of ['no worker', 'worker (defaults)', 'worker (concurrency 100)'] as const) {
    const worker = setting === 'no worker' ? undefined : new WorkerHandle();
    if (worker) {
      await worker.loaded();
      await worker.start('crier', url, singleQueue, setting.includes('100') ? { concurrency: 100 } : {});
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    const publisher = await adapter.publisher(url, singleQueue, 8, {});
    notifications = 0;
    const startedAt = now();
    await inFlight(count, 8, (i) => publisher.one(makePayload(i)), next);
    next += count;
    const seconds = (now() - startedAt) / 1000;
    await publisher.close();
    await new Promise((resolve) => setTimeout(resolve, 300));
    console.log(`${setting}: ${(count / seconds).toFixed(0)} events/s, ${notifications} NOTIFYs for ${count} events`);
    if (worker) {
      await worker.waitHandled(count, 60_000).catch(() => {}); // let it finish before stopping
      await worker.stop();
      worker.kill();
    }
  }
} finally {
  await listener.end();
  await dropDatabase(url);
}
