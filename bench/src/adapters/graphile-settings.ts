// graphile-worker's best settings found by the sweep (kept apart so the runner does not load it):
// 20 concurrent jobs fed from a local queue of 500 locked jobs, completions batched.
import type { Tuning } from '../adapter.ts';

export const graphileBest: Tuning = { concurrency: 20, localQueueSize: 500, completeJobBatchDelay: 0, pollInterval: 2000 };
