// Probe: the cost of the first publish of a new topic (its routes are resolved against every
// subscription) next to a publish of a topic whose routes are cached, with many subscriptions
// whose patterns do not match. Both kinds alternate in one loop on one connection, so machine load
// weighs on them alike; one event per transaction (SQL crier.publish), each topic routed to one
// subscription.
//   node --import tsx bench/src/probes/new-topic-routing.ts [subscriptions] [publishes of each kind]
import postgres from 'postgres';
import { migrate } from '../../../src/migrate.ts';
import { now } from '../clock.ts';
import { createDatabase, dropDatabase, sharedServerUrl } from '../database.ts';

const subscriptionCount = Number(process.argv[2] ?? 1000);
const count = Number(process.argv[3] ?? 300);
const url = await createDatabase(sharedServerUrl, 'probe_new_topic');
const sql = postgres(url, { max: 1, onnotice: () => {} });
try {
  await migrate({ connection: url });
  // Most patterns start with their service's name; a few start with a wildcard.
  await sql`INSERT INTO crier.subscriptions (name, topics)
            SELECT 'sub' || i, CASE WHEN i % 100 = 0 THEN ARRAY['*.audit' || i]
                                    ELSE ARRAY['svc' || i || '.*.created', 'svc' || i || '.#'] END
            FROM generate_series(1, ${subscriptionCount - 1}) i`;
  await sql`INSERT INTO crier.subscriptions (name, topics) VALUES ('bench', '{bench.#}')`;
  await sql`SELECT crier.publish('bench.cached', '{}')`;
  const time = async (topic: string) => {
    const startedAt = now();
    await sql`SELECT crier.publish(${topic}, '{}')`;
    return now() - startedAt;
  };
  for (let i = 0; i < 50; i++) await time(i % 2 ? 'bench.cached' : `bench.warm${i}`);
  const cached: number[] = [];
  const fresh: number[] = [];
  for (let i = 0; i < count; i++) {
    cached.push(await time('bench.cached'));
    fresh.push(await time(`bench.new${i}`));
  }
  const [{ n }] = (await sql`SELECT count(*)::int AS n FROM crier.deliveries WHERE subscription = 'bench'`) as unknown as [{ n: number }];
  if (n !== 2 * count + 51) throw new Error(`expected ${2 * count + 51} deliveries to "bench", found ${n}`);
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  console.log(`${subscriptionCount} subscriptions, ${count} publishes of each kind, alternating:`);
  console.log(`  cached topic: median ${median(cached).toFixed(2)} ms, mean ${mean(cached).toFixed(2)} ms`);
  console.log(`  new topic:    median ${median(fresh).toFixed(2)} ms, mean ${mean(fresh).toFixed(2)} ms`);
  console.log(`  new / cached: ${(median(fresh) / median(cached)).toFixed(2)}x (medians)`);
} finally {
  await sql.end();
  await dropDatabase(url);
}
