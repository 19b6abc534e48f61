// Probe: the cost of crier's publish path itself, without any worker (so nobody is parked and no
// NOTIFY is sent), side by side with the raw baselines' bare insert; rounds alternate.
//   node --import tsx bench/src/probes/publish-cost.ts [N] [rounds]
import { loadAdapter, type ContestantName } from '../adapter.ts';
import { now } from '../clock.ts';
import { createDatabase, dropDatabase, sharedServerUrl } from '../database.ts';
import { makePayload } from '../payload.ts';
import { inFlight, singleQueue } from '../scenarios/scenario.ts';

const count = Number(process.argv[2] ?? 3000);
const rounds = Number(process.argv[3] ?? 3);
const names: ContestantName[] = ['crier', 'raw-nonotify', 'raw'];
const results = new Map<ContestantName, number[]>();
for (let round = 0; round < rounds; round++) {
  for (const name of names) {
    const adapter = await loadAdapter(name);
    const url = await createDatabase(sharedServerUrl, `probe_cost_${name}`);
    try {
      await adapter.install(url, singleQueue, {});
      const publisher = await adapter.publisher(url, singleQueue, 8, {});
      await inFlight(200, 8, (i) => publisher.one(makePayload(i)));
      const startedAt = now();
      await inFlight(count, 8, (i) => publisher.one(makePayload(i)), 200);
      results.set(name, [...(results.get(name) ?? []), count / ((now() - startedAt) / 1000)]);
      await publisher.close();
    } finally {
      await dropDatabase(url);
    }
  }
}
for (const [name, rates] of results) {
  console.log(`${name.padEnd(13)} ${rates.map((r) => r.toFixed(0)).join(' / ')} events/s (one per transaction, 8 in flight, no worker)`);
}
