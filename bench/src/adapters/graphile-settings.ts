// graphile-worker's best settings (kept apart so the runner does not load it): its performance
// page's batching configuration (a local queue of 500 locked jobs, completions and failures
// released in batches with no delay), with the concurrency the sweep found (20). bench/README.md
// says why each.
import type { Tuning } from '../adapter.ts';

export const graphileBest: Tuning = { concurrency: 20, localQueueSize: 500, completeJobBatchDelay: 0, failJobBatchDelay: 0, pollInterval: 2000 };
