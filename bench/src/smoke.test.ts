// The bench's harness and adapters at tiny N: every contestant delivers every event once through
// the same cells `npm run bench` runs (own process, fresh database). Correctness only: no timing is
// asserted here; figures come from `npm run bench`. About a minute on a quiet machine, so CI runs it
// as its own step (.ci/run); `npm test` runs only the smallest cell (test/bench-smoke.test.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { contestants } from './adapter.ts';
import { runCell } from './run-cell.ts';
import type { Scale } from './scenarios/scenario.ts';
import { bestTuning } from './tuning.ts';
import { serverUrl } from '../../test/support/database.ts';

const tiny: Scale = { single: 20, batch: 200, drain: 100, latency: 20, fanOut: 20, history: 100, manySubscriptions: 100, idleSeconds: 2 };

describe('bench smoke', () => {
  for (const contestant of contestants) {
    test(`${contestant}: drain and latency cells deliver every event once`, async () => {
      for (const scenario of ['drain', 'latency']) {
        const result = await runCell({ contestant, scenario, serverUrl, scale: tiny, tuning: bestTuning(contestant) }, 120_000);
        const headline = scenario === 'drain' ? result.metrics.eventsPerSecond : result.metrics.p99Ms;
        assert.ok(Number.isFinite(headline), `${contestant}/${scenario} reported ${JSON.stringify(result.metrics)}`);
        assert.ok(result.workerPeakRssMiB! > 0);
      }
    });
  }

  test("crier: drain-failures drains with history 'failures' and keeps no delivery row", async () => {
    const result = await runCell({ contestant: 'crier', scenario: 'drain-failures', serverUrl, scale: tiny, tuning: bestTuning('crier') }, 120_000);
    assert.ok(result.metrics.eventsPerSecond! > 0);
  });

  test('crier: many-subscriptions counts the worker\'s connections and idle commits, and handles every event', async () => {
    const result = await runCell({ contestant: 'crier', scenario: 'many-subscriptions', serverUrl, scale: tiny, tuning: {} }, 180_000);
    assert.ok(result.metrics.eventsPerSecond! > 0);
    assert.ok(result.metrics.connectionsPeak! >= 2, `counted the worker's connections: ${JSON.stringify(result.metrics)}`);
    assert.ok(Number.isFinite(result.metrics.idleCommitsPerSecond));
  });

  test('crier: fan-out delivers each event to all three subscriptions', async () => {
    const result = await runCell({ contestant: 'crier', scenario: 'fan-out', serverUrl, scale: tiny, tuning: {} }, 120_000);
    assert.ok(result.metrics.eventsPerSecond! > 0);
  });
});
