// crier's public API. Everything not exported here is internal and may change.
export { createCrier, subscription, type Crier, type CrierOptions } from './crier.ts';
export { CrierError, type CrierErrorCode } from './errors.ts';
export type { DrizzleExecutor, Executor, PostgresJsExecutor, QueryExecutor } from './executor.ts';
export type { Duration } from './duration.ts';
export { migrate, type MigrateOptions, type MigrateResult } from './migrate.ts';
export type { EventHeaders, EventInput, PublishedEvent, PublishOptions } from './publish.ts';
export type { RetryPolicy, SubscriptionSpec } from './subscriptions.ts';
export { isValidPattern, isValidTopic, topicMatches } from './topics.ts';
export { MAX_HEADER_ID_BYTES, MAX_IDEMPOTENCY_KEY_BYTES, MAX_KEY_BYTES, MAX_TOPIC_BYTES } from './limits.ts';
export { consoleLogger, silentLogger, type Logger } from './logger.ts';
export type { CrierEvent, Handler, HandlerContext } from './worker/event.ts';
export { UnrecoverableError } from './errors.ts';
export { RetryLater } from './worker/failure.ts';
export { Worker, type SubscriptionDefinition, type WorkerOptions } from './worker/worker.ts';
// Observability: worker events (docs/observability.md).
export type { AttemptEvent, WorkerEventName, WorkerEvents } from './worker/events.ts';
export { createConsoleLogger, type ConsoleLoggerOptions, type LogFormat, type LogLevel } from './logger.ts';
export { createAdmin, type Admin, type AdminOptions } from './admin/index.ts';
export type {
  DeadFilter, DeadLetter, DeliveryRecord, EventDetail, EventFilter, EventRecord, EventSummary, PruneOptions, PruneResult,
  ReplayOptions, ReplayResult, RequeueOptions, RequeueResult, RequeueSelection, RequeuedDelivery, RemoveOptions,
  SubscriptionInfo, CreateSubscriptionOptions, CreateSubscriptionResult,
  SubscriptionStats, TailOptions,
} from './admin/index.ts';
export { toTime } from './duration.ts';
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
export { formatIssues, PayloadValidationError, PoisonMessageError } from './catalog/decode.ts';
export {
  catalogSettings,
  listCatalog,
  registerCatalog,
  setCatalogValidation,
  setRejectUnknownTopics,
  showCatalogEntry,
  type CatalogEntryDetail,
  type CatalogListRow,
  type CatalogSettings,
  type RegisterOptions,
  type RegisterResult,
} from './catalog/registry.ts';
export {
  createTypedCrier,
  type CatalogEvent,
  type CatalogEventInput,
  type CatalogSubscription,
  type CatalogSubscriptionDefinition,
  type TypedCrier,
} from './catalog/typed-crier.ts';
export { eventChain, type ChainLink } from './causation.ts';
