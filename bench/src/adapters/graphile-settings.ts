// graphile-worker's best settings found by the sweep (kept apart so the runner does not load it).
import type { Tuning } from '../adapter.ts';

export const graphileBest: Tuning = { concurrency: 10, localQueueSize: 500, completeJobBatchDelay: 0, pollInterval: 2000 };
