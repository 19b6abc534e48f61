// The smallest run that proves the bench works: one crier drain cell at tiny N through the same
// harness `npm run bench` uses (a forked cell, a fresh database, a worker process, metrics back).
// Every contestant and scenario is checked by bench/src/smoke.test.ts, CI's bench step. No timing
// is asserted; figures come from `npm run bench`.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runCell } from '../bench/src/run-cell.ts';
import { bestTuning } from '../bench/src/tuning.ts';
import { serverUrl } from './support/database.ts';

test('bench: a crier drain cell delivers every event once and reports its figures', async () => {
  const scale = { single: 10, batch: 10, drain: 20, latency: 10, fanOut: 10, history: 10, manySubscriptions: 10, idleSeconds: 1 };
  const result = await runCell({ contestant: 'crier', scenario: 'drain', serverUrl, scale, tuning: bestTuning('crier') }, 120_000);
  assert.ok(Number.isFinite(result.metrics.eventsPerSecond) && result.metrics.eventsPerSecond! > 0, JSON.stringify(result.metrics));
  assert.ok(result.workerPeakRssMiB! > 0);
});
