// The settings each contestant runs with in `npm run bench`: the best found by the sweep
// (`npm run bench:sweep`, figures in docs/benchmarks.md). crier runs with its defaults.
import type { ContestantName, Tuning } from './adapter.ts';
import { graphileBest } from './adapters/graphile-settings.ts';
import { pgbossBest } from './adapters/pgboss-settings.ts';

export function bestTuning(contestant: ContestantName): Tuning {
  switch (contestant) {
    case 'pgboss':
      return pgbossBest;
    case 'graphile':
      return graphileBest;
    default:
      return {};
  }
}
