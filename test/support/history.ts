// The history choice of a test run (issue 19: the suite passes with both): `npm test -- --history
// failures` (test/run.ts) sets CRIER_TEST_HISTORY for every test file and the processes they start.
// Under 'failures' every subscription that does not choose its history explicitly gets 'failures':
// the test database's column default covers SQL, the CLI and the admin API (createTestDatabase), and
// the wrappers below cover what TypeScript declares (workers, crier/testing's drains, relays). A
// subscription that asks for 'full' still gets 'full'. The library keeps its documented default
// ('full'); this switch lives only in test/. Not covered: subscriptions declared by child processes
// that do not use these wrappers (`crier relay`), by the NestJS module and by tenant schemas' SQL.
import {
  createCrier as createLibraryCrier,
  createTypedCrier as createLibraryTypedCrier,
  type Catalog,
  type Crier,
  type CrierOptions,
  type SubscriptionHistory,
  type TypedCrier,
  type WorkerOptions,
} from '../../src/index.ts';
import * as testing from '../../src/testing.ts';

const chosen = process.env.CRIER_TEST_HISTORY ?? 'full';
if (chosen !== 'full' && chosen !== 'failures') throw new Error(`CRIER_TEST_HISTORY is full or failures, not ${JSON.stringify(chosen)}`);

/** The history of the run's subscriptions that choose none: 'full' (the library's default) or 'failures'. */
export const testHistory: SubscriptionHistory = chosen;

/** A subscription as declared, with the run's history when it chooses none. */
export function withTestHistory<S extends { history?: SubscriptionHistory }>(spec: S): S {
  // Anything but a plain declaration (the tests of bad input) goes to the library as it is.
  const choosesNone = typeof spec === 'object' && spec !== null && spec.history === undefined;
  return choosesNone && testHistory !== 'full' ? { ...spec, history: testHistory } : spec;
}

/** Worker options whose subscriptions choose no history get the run's. */
function withTestHistories<O extends Pick<WorkerOptions, 'subscriptions'>>(options: O): O {
  const { subscriptions } = options;
  return Array.isArray(subscriptions) ? { ...options, subscriptions: subscriptions.map(withTestHistory) } : options;
}

/** The library's createCrier, whose workers declare their subscriptions withTestHistory. */
export function createCrier(options?: CrierOptions): Crier {
  const crier = createLibraryCrier(options);
  return { ...crier, worker: (workerOptions) => crier.worker(withTestHistories(workerOptions)) };
}

/** The library's createTypedCrier, whose workers declare their subscriptions withTestHistory. */
export function createTypedCrier<C extends Catalog>(catalog: C, options?: CrierOptions): TypedCrier<C> {
  const crier = createLibraryTypedCrier(catalog, options);
  return { ...crier, worker: (workerOptions) => crier.worker(withTestHistories(workerOptions)) };
}

/** crier/testing's drain, declaring its subscriptions withTestHistory. */
export const drain: typeof testing.drain = (connection, subscriptions, options) =>
  testing.drain(connection, subscriptions.map(withTestHistory), options);

/** crier/testing's publishAndDrain, declaring its subscriptions withTestHistory. */
export const publishAndDrain: typeof testing.publishAndDrain = (connection, subscriptions, publish, options) =>
  testing.publishAndDrain(connection, subscriptions.map(withTestHistory), publish, options);
