// CrierPublisher: the injectable face of publishing. It opens no connection and no transaction of
// its own: every call runs in the transaction the caller passes (crier's Executor: postgres.js,
// Drizzle, or any client the core accepts), so the event commits or rolls back with the caller's
// business writes.
import { createCrier, type Crier, type CrierOptions } from '../../crier.ts';
import type { Executor } from '../../executor.ts';
import type { EventInput, PublishedEvent, PublishOptions } from '../../publish.ts';

export class CrierPublisher {
  private readonly crier: Crier;

  constructor(options: Pick<CrierOptions, 'schema' | 'instrumentation'> = {}) {
    this.crier = createCrier(options);
  }

  /** The schema this publisher writes to. */
  get schema(): string {
    return this.crier.schema;
  }

  /** Publishes one event inside `tx`. */
  publish<P>(tx: Executor, topic: string, payload: P, options?: PublishOptions): Promise<PublishedEvent> {
    return this.crier.publish(tx, topic, payload, options);
  }

  /** Publishes many events in one statement inside `tx`. */
  publishMany(tx: Executor, events: readonly EventInput[]): Promise<PublishedEvent[]> {
    return this.crier.publishMany(tx, events);
  }
}
