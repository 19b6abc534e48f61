// The typed face of crier for a catalog: publish is typed by topic (an unknown topic or a wrong
// payload does not compile) and validated before anything is written; a subscription is typed by
// its topic patterns, and its handler receives the parsed, upcast, latest-version payload. Everything
// else is the plain crier underneath: same tables, same workers, same SQL.
import type postgres from 'postgres';
import { createCrier, type Crier, type CrierOptions } from '../crier.ts';
import { CrierError, quote } from '../errors.ts';
import type { Executor } from '../executor.ts';
import type { MigrateResult } from '../migrate.ts';
import type { PublishedEvent, PublishOptions } from '../publish.ts';
import { topicMatches } from '../topics.ts';
import type { CrierEvent, HandlerContext } from '../worker/event.ts';
import type { SubscriptionDefinition, Worker, WorkerOptions } from '../worker/worker.ts';
import { decodeStored, validateForPublish } from './decode.ts';
import type { AnyCatalog, Payload, PayloadInput, TopicOf } from './define.ts';
import { registerCatalog, type RegisterOptions, type RegisterResult } from './registry.ts';
import type { MatchingTopics, UnmatchedPatterns } from './topic-types.ts';

/** An event of the catalog as a handler sees it: one member per matching topic, narrowed by `topic`. */
export type CatalogEvent<C extends AnyCatalog, Pattern extends string = TopicOf<C>> = EventOfTopic<
  C,
  MatchingTopics<TopicOf<C>, Pattern>
>;
type EventOfTopic<C extends AnyCatalog, T extends string> = T extends unknown ? CrierEvent<Payload<C, T>, T> : never;

/** One event for publishMany: `payload` typed by `topic`. */
export type CatalogEventInput<C extends AnyCatalog> = {
  [T in TopicOf<C>]: { topic: T; payload: PayloadInput<C, T> } & PublishOptions;
}[TopicOf<C>];

export interface CatalogSubscriptionDefinition<C extends AnyCatalog, P extends string>
  extends Omit<SubscriptionDefinition, 'topics' | 'handler'> {
  /** Patterns over the catalog's topics: "order.created", "order.*", "order.#". */
  topics: readonly P[];
  handler: (event: CatalogEvent<C, P>, context: HandlerContext) => unknown;
}

/** A pattern that matches no topic of the catalog makes the definition fail to compile, naming it. */
type CheckPatterns<C extends AnyCatalog, P extends string> = [UnmatchedPatterns<TopicOf<C>, P>] extends [never]
  ? unknown
  : { topics: readonly [`no topic of the catalog matches "${UnmatchedPatterns<TopicOf<C>, P>}"`] };

/** A subscription made by a typed crier: a plain SubscriptionDefinition that also knows its catalog. */
export interface CatalogSubscription<C extends AnyCatalog = AnyCatalog> extends SubscriptionDefinition {
  readonly catalog: C;
}

export interface TypedCrier<C extends AnyCatalog> {
  readonly schema: string;
  readonly catalog: C;
  /** The untyped crier underneath, for topics outside the catalog. */
  readonly untyped: Crier;
  /** Validates `payload` with the topic's latest version, then publishes it inside `tx`. */
  publish<T extends TopicOf<C>>(
    tx: Executor,
    topic: T,
    payload: PayloadInput<C, T>,
    options?: PublishOptions,
  ): Promise<PublishedEvent>;
  /** Validates every event first (nothing is written if one fails), then publishes them in one INSERT. */
  publishMany(tx: Executor, events: readonly CatalogEventInput<C>[]): Promise<PublishedEvent[]>;
  /** Declares a subscription whose handler receives parsed, upcast, latest-version payloads. */
  subscription<const P extends string>(
    definition: CatalogSubscriptionDefinition<C, P> & CheckPatterns<C, P>,
  ): CatalogSubscription<C>;
  worker(options: Omit<WorkerOptions, 'schema'>): Worker;
  migrate(connection: postgres.Sql<any> | string): Promise<MigrateResult>;
  /** Stores the catalog (topics, versions, JSON Schemas) in this schema; see registerCatalog. */
  register(sql: Executor, options?: Omit<RegisterOptions, 'schema'>): Promise<RegisterResult>;
}

/**
 * A crier typed by a catalog:
 *
 *   const crier = createTypedCrier(catalog);
 *   await crier.publish(tx, 'order.created', { orderId: 'o-1', amountCents: 1250, currency: 'EUR' });
 *   const billing = crier.subscription({ name: 'billing', topics: ['order.*'], handler: async (event) => {...} });
 */
export function createTypedCrier<C extends AnyCatalog>(catalog: C, options: CrierOptions = {}): TypedCrier<C> {
  const untyped = createCrier(options);
  const schema = untyped.schema;
  return {
    schema,
    catalog,
    untyped,
    async publish(tx, topic, payload, publishOptions = {}) {
      const checked = await validateForPublish(catalog, topic, payload);
      const [event] = await untyped.publishMany(tx, [{ ...publishOptions, topic, ...checked }]);
      return event!;
    },
    async publishMany(tx, events) {
      const checked = await Promise.all(
        events.map(async (event) => ({ ...event, ...(await validateForPublish(catalog, event.topic, event.payload)) })),
      );
      return untyped.publishMany(tx, checked);
    },
    subscription(definition) {
      return catalogSubscription(catalog, definition as CatalogSubscriptionDefinition<C, string>);
    },
    worker: (workerOptions) => untyped.worker(workerOptions),
    migrate: (connection) => untyped.migrate(connection),
    register: (sql, registerOptions = {}) => registerCatalog(sql, catalog, { ...registerOptions, schema }),
  };
}

function catalogSubscription<C extends AnyCatalog>(
  catalog: C,
  definition: CatalogSubscriptionDefinition<C, string>,
): CatalogSubscription<C> {
  const topics = Array.isArray(definition?.topics) ? definition.topics : [];
  for (const pattern of topics) {
    if (!catalog.topics.some((topic) => topicMatches(topic, pattern))) {
      throw new CrierError(
        'CRIER_INVALID_OPTION',
        `subscription "${definition.name}": pattern ${quote(pattern)} matches no topic of the catalog (${catalog.topics.join(', ')})`,
      );
    }
  }
  const handler = definition.handler;
  return {
    ...definition,
    catalog,
    async handler(event: CrierEvent, context: HandlerContext) {
      const payload = await decodeStored(catalog, event);
      return handler({ ...event, payload } as CatalogEvent<C, string>, context);
    },
  };
}
