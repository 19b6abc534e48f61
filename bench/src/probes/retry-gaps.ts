// Probe: when the retries of a failing delivery start, against their due time (issue 16 item 1).
// Each run publishes one event to an idle worker (poll 10 s, backoff 100 ms - 1 s) whose handler
// fails `failures` times, then succeeds. Printed per run: the gaps between attempt starts, and each
// retry's lateness (started_at - available_at, both by the database's clock). A retry that waited
// for the poll shows up as a gap near 10,000 ms.
//   node --import tsx bench/src/probes/retry-gaps.ts [runs] [failures] [pollInterval]
import postgres from 'postgres';
import { createCrier, type Duration } from '../../../src/index.ts';
import { createDatabase, dropDatabase, sharedServerUrl } from '../database.ts';

const runs = Number(process.argv[2] ?? 8);
const failures = Number(process.argv[3] ?? 3);
const pollInterval = (process.argv[4] ?? '10s') as Duration;
const crier = createCrier();
const url = await createDatabase(sharedServerUrl, 'probe_retry_gaps');
const sql = postgres(url, { max: 2, onnotice: () => {} });
const allLateness: number[] = [];
try {
  await crier.migrate(url);
  for (let run = 0; run < runs; run++) {
    const name = `gaps${run}`;
    const starts: number[] = [];
    const lateness: number[] = [];
    let finished!: () => void;
    const done = new Promise<void>((resolve) => (finished = resolve));
    const worker = crier.worker({
      connection: url,
      handleSignals: false,
      logger: false,
      pollInterval,
      subscriptions: [
        {
          name,
          topics: [`${name}.#`],
          backoff: { base: '100ms', max: '1s' },
          maxAttempts: failures + 1,
          handler: async (_event, ctx) => {
            starts.push(Date.now());
            if (ctx.attempt > 1) {
              const [row] = await sql`SELECT extract(epoch FROM started_at - available_at) * 1000 AS late
                                      FROM crier.deliveries WHERE id = ${ctx.deliveryId}`;
              lateness.push(Number(row!.late));
            }
            if (ctx.attempt <= failures) throw new Error(`attempt ${ctx.attempt} fails`);
            finished();
          },
        },
      ],
    });
    await worker.start();
    // Let the loop park and idle, as a worker between bursts is.
    await new Promise((resolve) => setTimeout(resolve, 300));
    await crier.publish(sql, `${name}.x`, {});
    await done;
    await worker.stop();
    allLateness.push(...lateness);
    const gaps = starts.slice(1).map((t, i) => t - starts[i]!);
    console.log(`run ${run + 1}: gaps ${gaps.join(', ')} ms; retries late by ${lateness.map((l) => l.toFixed(1)).join(', ')} ms`);
  }
  allLateness.sort((a, b) => a - b);
  const at = (q: number) => allLateness[Math.min(allLateness.length - 1, Math.floor(q * allLateness.length))]!.toFixed(1);
  console.log(`${allLateness.length} retries, poll ${pollInterval}: lateness median ${at(0.5)} ms, p90 ${at(0.9)} ms, max ${at(1)} ms`);
} finally {
  await sql.end({ timeout: 1 });
  await dropDatabase(url);
}
