// crier's public API, in five groups. Everything not exported here is internal and may change;
// the subpaths (crier/testing, crier/drizzle, crier/kysely, crier/knex, crier/prisma, crier/nestjs,
// crier/opentelemetry, crier/relay, crier/bridge) are public too, each for its own integration.

// Set up and publish: a crier for a schema, its migrations, the event's shape and the byte limits.
export { createCrier, subscription, type Crier, type CrierOptions } from './crier.ts';
export { migrate, type MigrateOptions, type MigrateResult } from './migrate.ts';
export type { DrizzleExecutor, Executor, PostgresJsExecutor, QueryExecutor } from './executor.ts';
export type { EventHeaders, EventInput, PublishedEvent, PublishOptions } from './publish.ts';
export { isValidPattern, isValidTopic, topicMatches } from './topics.ts';
export { MAX_HEADER_ID_BYTES, MAX_IDEMPOTENCY_KEY_BYTES, MAX_KEY_BYTES, MAX_TOPIC_BYTES } from './limits.ts';
export { eventChain, type ChainLink } from './causation.ts';

// Consume: workers, subscriptions, handlers, and the errors a handler throws to steer its retries.
export { Worker, type SubscriptionDefinition, type WorkerOptions } from './worker/worker.ts';
export type { RetryPolicy, SubscriptionHistory, SubscriptionSpec } from './subscriptions.ts';
export type { CrierEvent, Handler, HandlerContext } from './worker/event.ts';
export { RetryLater } from './worker/failure.ts';
export { consoleLogger, silentLogger, type Logger } from './logger.ts';
export type { AttemptInfo, Instrumentation } from './instrumentation.ts';
export type { Duration } from './duration.ts';
// ... what a worker reports: its events and the default logger (docs/observability.md).
export type { AttemptEvent, WorkerEventName, WorkerEvents } from './worker/events.ts';
export { createConsoleLogger, type ConsoleLoggerOptions, type LogFormat, type LogLevel } from './logger.ts';

// Errors: every failure crier raises is a CrierError with a code; UnrecoverableError skips retries.
export { CrierError, UnrecoverableError, type CrierErrorCode } from './errors.ts';

// Typed events: a zod catalog, versions and upcasters, checked at publish and at the handler.
export {
  Catalog,
  defineCatalog,
  type CatalogEntry,
  type Payload,
  type PayloadInput,
  type TopicDefinition,
  type TopicOf,
  type Upcasters,
  type Versions,
} from './catalog/define.ts';
export {
  createTypedCrier,
  type CatalogEvent,
  type CatalogEventInput,
  type CatalogSubscription,
  type CatalogSubscriptionDefinition,
  type TypedCrier,
} from './catalog/typed-crier.ts';
export { formatIssues, PayloadValidationError, PoisonMessageError } from './catalog/decode.ts';
export { registerCatalog, type RegisterOptions, type RegisterResult } from './catalog/registry.ts';

// Operate: what the CLI does, from TypeScript (inspect, requeue, replay, prune, the stored catalog).
export { createAdmin, type Admin, type AdminOptions } from './admin/index.ts';
export type {
  DeadFilter, DeadLetter, DeliveryRecord, EventDetail, EventFilter, EventRecord, EventSummary, PruneOptions, PruneResult,
  ReplayOptions, ReplayResult, RequeueOptions, RequeueResult, RequeueSelection, RequeuedDelivery, RemoveOptions,
  SubscriptionInfo, CreateSubscriptionOptions, CreateSubscriptionResult,
  SubscriptionStats, TailOptions,
} from './admin/index.ts';
export type { CatalogEntryDetail, CatalogListRow, CatalogSettings } from './catalog/registry.ts';
export { toTime } from './duration.ts';
