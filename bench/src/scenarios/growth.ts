// growth (crier): does history cost the hot path anything? Runs on the embedded Postgres with default
// settings (autovacuum on). In one fresh database:
//   1. publish and drain B events into an empty database (publish-batch and drain rates);
//   2. publish and drain H events (the history: 10 million at full scale), then table and index sizes
//      (crier.storage: every partition) and bytes on disk per event and delivery;
//   3. publish and drain B events again, with H done events in history: the same rates, at once (while
//      autovacuum works through the dead row versions the history left) and again once autovacuum has
//      caught up with crier's tables (waiting up to 10 minutes; the figures say how long it took);
//   4. publish-single rate with 1, 100 and 1,000 subscriptions, all but one not matching the topic;
//   5. crier prune of everything finished: how long it takes, and how many partitions it dropped whole;
//   and whether the claim's plan reads the pending index, with fresh and with settled statistics.
import postgres from 'postgres';
import { createAdmin } from '../../../src/index.ts';
import { now } from '../clock.ts';
import { makePayload } from '../payload.ts';
import { WorkerHandle } from '../worker-handle.ts';
import { inFlight, publishBatches, rate, singleQueue, waitDrained, type Scenario, type ScenarioContext } from './scenario.ts';

const claimQuery = `EXPLAIN (FORMAT JSON)
  SELECT d.id FROM crier.deliveries d
  WHERE d.subscription = 'bench' AND d.state = 'pending' AND d.available_at <= now()
  ORDER BY d.available_at, d.id LIMIT 500 FOR UPDATE SKIP LOCKED`;

async function publishAndDrain(context: ScenarioContext, count: number, from: number) {
  const { adapter, url, tuning, contestant } = context;
  const publisher = await adapter.publisher(url, singleQueue, 8, tuning);
  let published: number;
  try {
    const startedAt = now();
    await publishBatches(publisher, count, 100, 8, from);
    published = rate(count, startedAt);
  } finally {
    await publisher.close();
  }
  const worker = new WorkerHandle();
  try {
    await worker.loaded();
    const startedAt = now();
    await worker.start(contestant, url, singleQueue, tuning);
    await worker.waitHandled(count, 900_000);
    await waitDrained(adapter, url, 120_000);
    const drained = rate(count, startedAt);
    const report = await worker.stop();
    return { published, drained, peakRssMiB: report.peakRssMiB };
  } finally {
    worker.kill();
  }
}

/**
 * Waits until no autovacuum worker runs and crier.deliveries and crier.events have each been
 * vacuumed since their dead row versions piled up (dead rows small, over all their partitions);
 * returns the seconds waited.
 */
async function waitForAutovacuum(sql: postgres.Sql, timeoutMs: number): Promise<number> {
  const startedAt = now();
  for (;;) {
    const [row] = await sql`
      SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker')::int AS workers,
             (SELECT coalesce(max(dead_rows::float8 / greatest(live_rows, 1)), 0) FROM crier.storage) AS dead_share`;
    if ((row!.workers === 0 && row!.dead_share < 0.05) || now() - startedAt > timeoutMs) return (now() - startedAt) / 1000;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

export const growth: Scenario = {
  name: 'growth',
  headline: { metric: 'drainRatio', unit: 'drain with history / empty', higherIsBetter: true },
  server: 'embedded',
  appliesTo: (adapter) => adapter.name === 'crier',
  async run(input) {
    // Concurrency 100 (crier's default is 10) drains the million-event history in minutes, not a
    // quarter of an hour; the figures are ratios of crier against itself, so the setting cancels out.
    const context = { ...input, tuning: { concurrency: 100, ...input.tuning } };
    const { adapter, url, tuning, scale, log } = context;
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    try {
      await adapter.install(url, singleQueue, tuning);
      const usesPendingIndex = async () => {
        const [row] = await sql.unsafe(claimQuery);
        return /deliveries_p\d+_pending_idx/.test(JSON.stringify(row!['QUERY PLAN'])) ? 1 : 0;
      };
      const batch = Math.min(scale.batch, 20_000);
      const planFresh = await usesPendingIndex();
      const empty = await publishAndDrain(context, batch, 0);
      log(`empty: publish ${empty.published.toFixed(0)}/s, drain ${empty.drained.toFixed(0)}/s; building history of ${scale.history}`);

      const history = await publishAndDrain(context, scale.history, batch);
      const [sizes] = await sql`
        SELECT e.table_bytes + e.index_bytes AS events, d.table_bytes + d.index_bytes AS deliveries,
               e.table_bytes AS events_table, e.index_bytes AS events_indexes,
               d.table_bytes AS deliveries_table, d.index_bytes AS deliveries_indexes,
               (SELECT sum(pg_relation_size(i.relid)) FROM pg_partition_tree('crier.deliveries_pending_idx') i) AS pending_idx,
               d.dead_rows AS dead, d.autovacuums, e.partitions + d.partitions AS partitions,
               (SELECT count(*) FROM crier.events) AS event_rows, (SELECT count(*) FROM crier.deliveries) AS delivery_rows
        FROM crier.storage e, crier.storage d WHERE e.table_name = 'events' AND d.table_name = 'deliveries'`;
      log(`history built (drain ${history.drained.toFixed(0)}/s); measuring with history`);

      const planHistory = await usesPendingIndex();
      const withHistory = await publishAndDrain(context, batch, batch + scale.history);
      log(`with history: publish ${withHistory.published.toFixed(0)}/s, drain ${withHistory.drained.toFixed(0)}/s; waiting for autovacuum`);
      const vacuumWaitS = await waitForAutovacuum(sql, 600_000);
      const settled = await publishAndDrain(context, batch, 2 * batch + scale.history);
      log(`after autovacuum (${vacuumWaitS.toFixed(0)} s): publish ${settled.published.toFixed(0)}/s, drain ${settled.drained.toFixed(0)}/s`);

      // Publish cost of subscriptions that do not match: 1 matching + (n - 1) others.
      const single = Math.min(scale.single, 5_000);
      const publisher = await adapter.publisher(url, singleQueue, 8, tuning);
      const subscriptionRates: Record<number, number> = {};
      try {
        let next = 10_000_000;
        for (const total of [1, 100, 1000]) {
          await sql`
            INSERT INTO crier.subscriptions (name, topics)
            SELECT 'other_' || k, ARRAY['other' || k || '.#', 'bench.other' || k]
            FROM generate_series(1, ${total - 1}) k
            ON CONFLICT (name) DO NOTHING`;
          await inFlight(200, 8, (i) => publisher.one(makePayload(i)), next); // warm the route cache
          next += 200;
          const startedAt = now();
          await inFlight(single, 8, (i) => publisher.one(makePayload(i)), next);
          next += single;
          subscriptionRates[total] = rate(single, startedAt);
        }
      } finally {
        await publisher.close();
      }
      // Retention: everything finished, pruned as an operator would, whole partitions first.
      const pruneStartedAt = now();
      const pruned = await createAdmin({ connection: sql }).prune({ olderThan: 0, events: true });
      const pruneSeconds = (now() - pruneStartedAt) / 1000;
      log(`prune: ${pruned.deliveries} deliveries and ${pruned.events} events in ${pruneSeconds.toFixed(1)} s, ${pruned.partitions} partitions dropped whole`);

      const mib = (bytes: unknown) => Number(bytes) / 2 ** 20;
      return {
        metrics: {
          publishEmpty: empty.published,
          publishHistory: withHistory.published,
          publishRatio: withHistory.published / empty.published,
          drainEmpty: empty.drained,
          drainHistory: withHistory.drained,
          drainRatio: withHistory.drained / empty.drained,
          publishSettled: settled.published,
          publishRatioSettled: settled.published / empty.published,
          drainSettled: settled.drained,
          drainRatioSettled: settled.drained / empty.drained,
          autovacuumWaitSeconds: vacuumWaitS,
          historyEvents: scale.history,
          eventsTableMiB: mib(sizes!.events),
          deliveriesTableMiB: mib(sizes!.deliveries),
          eventsHeapMiB: mib(sizes!.events_table),
          eventsIndexesMiB: mib(sizes!.events_indexes),
          deliveriesHeapMiB: mib(sizes!.deliveries_table),
          pendingIndexMiB: mib(sizes!.pending_idx),
          deliveriesIndexesMiB: mib(sizes!.deliveries_indexes),
          // Every byte of both tables over the events in them (each with its one delivery).
          bytesPerEventAndDelivery: (Number(sizes!.events) + Number(sizes!.deliveries)) / Number(sizes!.event_rows),
          deliveryRows: Number(sizes!.delivery_rows),
          partitions: Number(sizes!.partitions),
          deliveriesDeadTuples: Number(sizes!.dead),
          autovacuumRuns: Number(sizes!.autovacuums),
          publishSingle1Sub: subscriptionRates[1]!,
          publishSingle100Subs: subscriptionRates[100]!,
          publishSingle1000Subs: subscriptionRates[1000]!,
          publishCostOf1000Subs: 1 - subscriptionRates[1000]! / subscriptionRates[1]!,
          pruneSeconds,
          prunePartitionsDropped: pruned.partitions,
          pruneRowsDeleted: pruned.deliveries + pruned.events,
          claimUsesPendingIndexFresh: planFresh,
          claimUsesPendingIndexHistory: planHistory,
        },
        workerPeakRssMiB: Math.max(empty.peakRssMiB, withHistory.peakRssMiB, settled.peakRssMiB),
      };
    } finally {
      await sql.end();
    }
  },
};
