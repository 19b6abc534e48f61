// Every scenario, in the order they run and are reported.
import { drain, drainFailures } from './drain.ts';
import { fanOut } from './fan-out.ts';
import { growth } from './growth.ts';
import { latency } from './latency.ts';
import { manySubscriptions } from './many-subscriptions.ts';
import { publishBatch, publishSingle } from './publish.ts';
import type { Scenario } from './scenario.ts';

export const scenarios: readonly Scenario[] = [publishSingle, publishBatch, drain, drainFailures, latency, fanOut, manySubscriptions, growth];

export function scenarioByName(name: string): Scenario {
  const found = scenarios.find((s) => s.name === name);
  if (!found) throw new Error(`unknown scenario "${name}" (known: ${scenarios.map((s) => s.name).join(', ')})`);
  return found;
}
