// The public face: one object per schema that publishes into the caller's transaction and makes
// workers. Everything it does is also reachable as plain SQL (crier.publish, crier.claim, ...).
import type postgres from 'postgres';
import type { Executor } from './executor.ts';
import { combineInstrumentation, type Instrumentation } from './instrumentation.ts';
import { migrate, type MigrateResult } from './migrate.ts';
import { publishEvents, type EventInput, type PublishedEvent, type PublishOptions } from './publish.ts';
import { checkSchemaName, defaultSchema } from './schema-name.ts';
import { Worker, type SubscriptionDefinition, type WorkerOptions } from './worker/worker.ts';

export interface CrierOptions {
  /** The Postgres schema holding crier's tables (default "crier"); one schema per tenant. */
  schema?: string;
  /**
   * Tracing and the like, for every publish of this crier and its workers (a worker's own option
   * replaces it): e.g. `openTelemetry()` from crier/opentelemetry. See docs/observability.md.
   */
  instrumentation?: Instrumentation | Instrumentation[];
}

export interface Crier {
  readonly schema: string;
  /** Publishes one event inside `tx` (postgres.js sql/transaction or Drizzle db/transaction). */
  publish<P>(tx: Executor, topic: string, payload: P, options?: PublishOptions): Promise<PublishedEvent>;
  /** Publishes many events in one INSERT statement inside `tx`. */
  publishMany(tx: Executor, events: readonly EventInput[]): Promise<PublishedEvent[]>;
  /** Creates (does not start) a worker for these subscriptions. */
  worker(options: Omit<WorkerOptions, 'schema'>): Worker;
  /** Applies migrations to this schema; safe to call concurrently and repeatedly. */
  migrate(connection: postgres.Sql<any> | string): Promise<MigrateResult>;
}

export function createCrier(options: CrierOptions = {}): Crier {
  const schema = checkSchemaName(options.schema ?? defaultSchema);
  const instrumentation = combineInstrumentation(options.instrumentation);
  return {
    schema,
    async publish(tx, topic, payload, publishOptions = {}) {
      const [event] = await publishEvents(tx, schema, [{ ...publishOptions, topic, payload }], instrumentation);
      return event!;
    },
    publishMany: (tx, events) => publishEvents(tx, schema, events, instrumentation),
    worker: (workerOptions) =>
      new Worker({ ...workerOptions, instrumentation: workerOptions.instrumentation ?? options.instrumentation, schema }),
    migrate: (connection) => migrate({ connection, schema }),
  };
}

/** Declares a subscription with its handler, for `worker({ subscriptions: [...] })`. */
export function subscription<P = unknown>(definition: SubscriptionDefinition<P>): SubscriptionDefinition<P> {
  return definition;
}
