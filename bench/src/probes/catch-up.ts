// Probe: how a contestant's worker catches up while and after producers publish in batches.
// Publishes N events (100 per transaction, 8 in flight) with the worker running, printing every
// second how many it has handled, then waits until it has handled them all (or `timeout` s pass).
//   node --import tsx bench/src/probes/catch-up.ts [contestant] [N] [timeout] [tuning JSON]
import type { ContestantName } from '../adapter.ts';
import { loadAdapter } from '../adapter.ts';
import { now } from '../clock.ts';
import { createDatabase, dropDatabase, sharedServerUrl } from '../database.ts';
import { publishBatches, singleQueue } from '../scenarios/scenario.ts';
import { WorkerHandle } from '../worker-handle.ts';

const contestant = (process.argv[2] ?? 'crier') as ContestantName;
const count = Number(process.argv[3] ?? 50_000);
const timeoutS = Number(process.argv[4] ?? 120);
const tuning = JSON.parse(process.argv[5] ?? '{}');
const adapter = await loadAdapter(contestant);
const url = await createDatabase(sharedServerUrl, `probe_catchup_${contestant}`);
const worker = new WorkerHandle();
try {
  await adapter.install(url, singleQueue, tuning);
  await worker.loaded();
  await worker.start(contestant, url, singleQueue, tuning);
  const publisher = await adapter.publisher(url, singleQueue, 8, tuning);
  const startedAt = now();
  let published = false;
  const trace = setInterval(() => {
    console.log(`${((now() - startedAt) / 1000).toFixed(0).padStart(4)} s  handled ${worker.handled}${published ? '' : ' (publishing)'}`);
  }, 1000);
  await publishBatches(publisher, count, 100, 8);
  published = true;
  await publisher.close();
  console.log(`published ${count} in ${((now() - startedAt) / 1000).toFixed(1)} s`);
  await worker.waitHandled(count, timeoutS * 1000).catch((error) => console.log(String(error)));
  clearInterval(trace);
  console.log(`handled ${worker.handled} of ${count} after ${((now() - startedAt) / 1000).toFixed(1)} s`);
  await worker.stop();
} finally {
  worker.kill();
  await dropDatabase(url);
}
