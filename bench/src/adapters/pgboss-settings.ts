// pg-boss's best settings found by the sweep (kept apart so the runner does not load pg-boss itself):
// batches of 100 fetched back to back while they come full, NOTIFY on for latency, one fetch loop.
import type { Tuning } from '../adapter.ts';

export const pgbossBest: Tuning = { batchSize: 100, burstWhenBatchFull: true, localConcurrency: 1, notify: true, pollingIntervalSeconds: 0.5 };
