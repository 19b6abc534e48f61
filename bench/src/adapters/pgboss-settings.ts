// pg-boss's best settings found by the sweep (kept apart so the runner does not load pg-boss itself).
import type { Tuning } from '../adapter.ts';

export const pgbossBest: Tuning = { batchSize: 100, burstWhenBatchFull: true, localConcurrency: 2, notify: true, pollingIntervalSeconds: 0.5 };
