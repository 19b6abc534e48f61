// The tables of schema "crier", as Drizzle sees them. drizzle-kit generates the table migrations
// (db/migrations) from this file; functions, triggers and views live in db/sql, one concept per file.
// Names here are a public contract: operators and SQL users query crier.events, crier.subscriptions
// and crier.deliveries directly. Column order follows the databases migrated before the baseline.
import { sql } from 'drizzle-orm';
import { MAX_HEADER_ID_BYTES, MAX_KEY_BYTES, MAX_TOPIC_BYTES } from '../src/limits.ts';
import {
  bigint,
  customType,
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgSchema,
  primaryKey,
  text,
  timestamp,
  uuid,
} from 'drizzle-orm/pg-core';

export const crier = pgSchema('crier');

const timestamptz = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

/**
 * The append-only log: one row per published event, never updated. Partitioned by ranges of id
 * (migration 0005, db/sql/partitions.sql), which drizzle-kit cannot express: only the columns,
 * constraints and indexes here are its business.
 */
export const events = crier.table(
  'events',
  {
    id: bigint('id', { mode: 'bigint' }).primaryKey().generatedAlwaysAsIdentity(),
    // Not UNIQUE: a partitioned table's unique keys must hold its partition key (id). uuids are drawn
    // at random by crier (v7 in TypeScript, v4 in SQL) and never supplied by callers.
    uuid: uuid('uuid').notNull().defaultRandom(),
    topic: text('topic').notNull(),
    key: text('key'),
    payload: jsonb('payload').notNull(),
    headers: jsonb('headers').notNull().default({}),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
    /** The payload's schema version in the catalog (docs/catalog.md); 1 when published without one. */
    version: integer('version').notNull().default(1),
    /** Delayed delivery: no delivery of this event is claimable before this time (null: at once). */
    deliverAt: timestamptz('deliver_at'),
  },
  (t) => [
    check('events_version_positive', sql`${t.version} >= 1`),
    // Chains of events published from handlers (crier.event_chain): only events that carry a
    // correlationId header are indexed.
    index('events_correlation_idx')
      .on(sql`(${t.headers} ->> 'correlationId')`)
      .where(sql`${t.headers} ? 'correlationId'`),
    // Topic, key and the indexed header ids within their limits in bytes (src/limits.ts): an INSERT
    // past one fails with its CRIER_*_TOO_LONG code (crier.event_within_limits names the value)
    // before any index sees the row. Plain comparisons with the numbers written in: a function
    // here would be planned again for every INSERT statement (db/sql/limits.sql). Not validated on
    // existing rows when added (0001, 0003): that would lock the log for a full scan. Named to run
    // before events_topic_valid (CHECKs run in name order).
    check(
      'events_byte_limits',
      sql.raw(
        `(octet_length(topic) <= ${MAX_TOPIC_BYTES} and coalesce(octet_length(key), 0) <= ${MAX_KEY_BYTES}` +
          ` and coalesce(octet_length(headers ->> 'correlationId'), 0) <= ${MAX_HEADER_ID_BYTES}` +
          ` and coalesce(octet_length(headers ->> 'causationId'), 0) <= ${MAX_HEADER_ID_BYTES})` +
          ' or crier.event_within_limits(topic, key, headers)',
      ),
    ),
    check(
      'events_topic_valid',
      sql`length(${t.topic}) <= 255 and ${t.topic} ~ '^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$'`,
    ),
    check('events_headers_object', sql`jsonb_typeof(${t.headers}) = 'object'`),
    // Time-bounded scans of the log (events list --since, replay, prune): tiny, and cheap to keep
    // because created_at grows with the table.
    index('events_created_at_brin').using('brin', t.createdAt),
    // Lookups by uuid (events show, requeue, the bridge's dedupe).
    index('events_uuid_idx').on(t.uuid),
  ],
);

/** A named consumer group: its topic patterns and its policies. */
export const subscriptions = crier.table(
  'subscriptions',
  {
    name: text('name').primaryKey(),
    topics: text('topics').array().notNull(),
    maxAttempts: integer('max_attempts').notNull().default(5),
    backoffBaseMs: integer('backoff_base_ms').notNull().default(1000),
    backoffMaxMs: integer('backoff_max_ms').notNull().default(300_000),
    leaseMs: integer('lease_ms').notNull().default(30_000),
    paused: boolean('paused').notNull().default(false),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
    updatedAt: timestamptz('updated_at').notNull().defaultNow(),
    /** Per-key FIFO: deliveries of events with the same key are handled one at a time, in order. */
    ordered: boolean('ordered').notNull().default(false),
    /** When the head of a key ends dead: 'block' the key until requeued (default) or 'skip' it. */
    orderedOnDead: text('ordered_on_dead', { enum: ['block', 'skip'] }).notNull().default('block'),
    /** Each pattern's first segment, '*' for one starting with a wildcard: what routing looks subscriptions up by. */
    topicHeads: text('topic_heads')
      .array()
      .generatedAlwaysAs(sql`crier.topic_pattern_heads(topics)`),
    /**
     * What a delivery leaves behind: 'full' keeps every delivery's row (done ones too, for audit);
     * 'failures' deletes a delivery that succeeded at its first attempt when it is acked
     * (crier.complete), and keeps the rest: retried, rescued, requeued and dead ones, with their errors.
     */
    history: text('history', { enum: ['full', 'failures'] }).notNull().default('full'),
  },
  (t) => [
    index('subscriptions_topic_heads_idx').using('gin', t.topicHeads),
    check('subscriptions_name_valid', sql`${t.name} ~ '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$'`),
    check('subscriptions_max_attempts_positive', sql`${t.maxAttempts} >= 1`),
    check('subscriptions_backoff_valid', sql`${t.backoffBaseMs} >= 0 and ${t.backoffMaxMs} >= ${t.backoffBaseMs}`),
    check('subscriptions_lease_positive', sql`${t.leaseMs} >= 100`),
    check('subscriptions_ordered_on_dead_valid', sql`${t.orderedOnDead} in ('block', 'skip')`),
    check('subscriptions_history_valid', sql`${t.history} in ('full', 'failures')`),
  ],
);

/**
 * One row per event x matching subscription: the state of that subscription's work on that event.
 * States: pending -> running -> done | pending (retry) | dead. See docs/delivery-states.md.
 * Ordered subscriptions add 'waiting': behind the head of its key, not claimable until promoted
 * (docs/guarantees.md). Partitioned by ranges of id, as crier.events is.
 */
export const deliveries = crier.table(
  'deliveries',
  {
    id: bigint('id', { mode: 'bigint' }).primaryKey().generatedAlwaysAsIdentity(),
    eventId: bigint('event_id', { mode: 'bigint' }).notNull(),
    subscription: text('subscription').notNull(),
    state: text('state', { enum: ['pending', 'running', 'done', 'dead', 'waiting'] }).notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    availableAt: timestamptz('available_at').notNull().defaultNow(),
    worker: text('worker'),
    lockedUntil: timestamptz('locked_until'),
    lastError: text('last_error'),
    lastErrorStack: text('last_error_stack'),
    errors: jsonb('errors').notNull().default([]),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
    startedAt: timestamptz('started_at'),
    finishedAt: timestamptz('finished_at'),
    updatedAt: timestamptz('updated_at').notNull().defaultNow(),
    /** The event's key, set only when the subscription was ordered at fan-out: the FIFO group. */
    orderingKey: text('ordering_key'),
  },
  (t) => [
    check('deliveries_state_valid', sql`${t.state} in ('pending', 'running', 'done', 'dead', 'waiting')`),
    // The claim path reads only this small index: its size follows pending work, not history.
    index('deliveries_pending_idx')
      .on(t.subscription, t.availableAt, t.id)
      .where(sql`${t.state} = 'pending'`),
    // Lease rescue reads only leased rows. Deliberately not "WHERE state = 'running'": acks filter
    // on that state, and an index matching it tempts the planner into a nested loop over every
    // running row per acked id (quadratic in the batch) instead of primary-key lookups.
    index('deliveries_lease_idx').on(t.lockedUntil).where(sql`${t.lockedUntil} is not null`),
    index('deliveries_dead_idx').on(t.subscription, t.finishedAt).where(sql`${t.state} = 'dead'`),
    index('deliveries_event_idx').on(t.eventId),
    // Promotion of the next delivery of a key reads only waiting rows.
    index('deliveries_waiting_idx')
      .on(t.subscription, t.orderingKey, t.id)
      .where(sql`${t.state} = 'waiting'`),
  ],
);

/**
 * The head of each active key of an ordered subscription: the one delivery of that key that may be
 * pending, running, or dead (blocking). A row exists while the key has unfinished deliveries;
 * its row lock serialises producers and acks of the same key.
 */
export const orderedKeys = crier.table(
  'ordered_keys',
  {
    subscription: text('subscription').notNull(),
    key: text('key').notNull(),
    headId: bigint('head_id', { mode: 'bigint' }).notNull(),
    since: timestamptz('since').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.subscription, t.key] })],
);

/** Producer idempotency keys: a retried publish with the same (topic, key) returns this event. */
export const idempotencyKeys = crier.table(
  'idempotency_keys',
  {
    topic: text('topic').notNull(),
    key: text('key').notNull(),
    eventId: bigint('event_id', { mode: 'bigint' }).notNull(),
    eventUuid: uuid('event_uuid').notNull(),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.topic, t.key] }), index('idempotency_keys_created_idx').on(t.createdAt)],
);

/** Consumer-side deduplication for handlers that are not transactional: what was processed. */
export const processed = crier.table(
  'processed',
  {
    subscription: text('subscription').notNull(),
    eventId: bigint('event_id', { mode: 'bigint' }).notNull(),
    at: timestamptz('at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.subscription, t.eventId] }), index('processed_at_idx').on(t.at)],
);

/**
 * Route cache: the subscriptions a topic fans out to, resolved on the topic's first publish so
 * that publishing never scans every subscription's patterns. A row is valid while its epoch equals
 * route_epoch.epoch; any change to subscriptions bumps the epoch.
 */
export const topicRoutes = crier.table('topic_routes', {
  topic: text('topic').primaryKey(),
  subscriptions: text('subscriptions').array().notNull(),
  epoch: bigint('epoch', { mode: 'number' }).notNull(),
});

export const routeEpoch = crier.table(
  'route_epoch',
  {
    singleton: boolean('singleton').primaryKey().default(true),
    epoch: bigint('epoch', { mode: 'number' }).notNull().default(1),
  },
  (t) => [check('route_epoch_singleton', sql`${t.singleton}`)],
);

/**
 * Workers that found nothing to claim and are waiting for a NOTIFY. Producers notify only when a
 * worker of a matching subscription is parked, so a busy system never takes the NOTIFY lock; the
 * first producer to wake a worker deletes its row, so the others skip even the check
 * (db/sql/wake.sql).
 */
export const parkedWorkers = crier.table(
  'parked_workers',
  {
    subscription: text('subscription').notNull(),
    worker: text('worker').notNull(),
    since: timestamptz('since').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.subscription, t.worker] })],
);

/**
 * The event catalog as registered from code (registerCatalog): one row per topic, with the flag
 * that turns on validation of every insert into crier.events for that topic, from SQL too.
 */
export const catalogTopics = crier.table(
  'catalog_topics',
  {
    topic: text('topic').primaryKey(),
    latestVersion: integer('latest_version').notNull(),
    description: text('description'),
    /** Validate payloads of this topic against the registered JSON Schema on every insert. */
    validate: boolean('validate').notNull().default(false),
    registeredAt: timestamptz('registered_at').notNull().defaultNow(),
    updatedAt: timestamptz('updated_at').notNull().defaultNow(),
  },
  (t) => [
    check('catalog_topics_topic_valid', sql`length(${t.topic}) <= 255 and ${t.topic} ~ '^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$'`),
    check('catalog_topics_latest_version_positive', sql`${t.latestVersion} >= 1`),
  ],
);

/** One row per version of a catalog topic: zod's JSON Schema of that version (what a producer may send). */
export const catalogVersions = crier.table(
  'catalog_versions',
  {
    topic: text('topic')
      .notNull()
      .references(() => catalogTopics.topic, { onDelete: 'cascade' }),
    version: integer('version').notNull(),
    jsonSchema: jsonb('json_schema').notNull(),
    registeredAt: timestamptz('registered_at').notNull().defaultNow(),
    updatedAt: timestamptz('updated_at').notNull().defaultNow(),
    /** Patterns of json_schema that Postgres cannot check faithfully (ECMAScript-only regex features). */
    uncheckedPatterns: text('unchecked_patterns')
      .array()
      .generatedAlwaysAs(sql`crier.json_schema_unchecked_patterns(json_schema)`),
  },
  (t) => [
    primaryKey({ columns: [t.topic, t.version] }),
    check('catalog_versions_version_positive', sql`${t.version} >= 1`),
  ],
);

/** Catalog-wide settings (one row). reject_unknown_topics: inserts must name a registered topic. */
export const catalogSettings = crier.table(
  'catalog_settings',
  {
    singleton: boolean('singleton').primaryKey().default(true),
    rejectUnknownTopics: boolean('reject_unknown_topics').notNull().default(false),
    updatedAt: timestamptz('updated_at').notNull().defaultNow(),
  },
  (t) => [check('catalog_settings_singleton', sql`${t.singleton}`)],
);

/** A role name stored as its oid (regrole): renaming the role keeps the grant. */
const regrole = customType<{ data: string }>({ dataType: () => 'regrole' });

/**
 * Which subscriptions a worker role may claim, ack and declare (issue 8, docs/security.md). Read by
 * the row-level security policies that crier.create_roles() installs for <prefix>_worker.
 */
export const subscriptionGrants = crier.table(
  'subscription_grants',
  {
    role: regrole('role').notNull(),
    subscription: text('subscription').notNull(),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ name: 'subscription_grants_pkey', columns: [t.role, t.subscription] })],
);

/**
 * Worker processes, as they registered themselves (crier.register_worker, db/sql/workers.sql): one
 * row per worker id, the id its claims write in crier.deliveries.worker. last_seen_at moves with the
 * worker's heartbeat; stopped_at is set by a clean stop. Rows of workers gone for a day are pruned
 * when another worker registers. Read it through the crier.workers view, which says live, stale or
 * stopped.
 */
export const registeredWorkers = crier.table(
  'registered_workers',
  {
    id: text('id').primaryKey(),
    host: text('host').notNull(),
    pid: integer('pid').notNull(),
    /** The crier version the worker runs. */
    version: text('version').notNull(),
    subscriptions: text('subscriptions').array().notNull(),
    /** How often the worker says it is alive: the view calls it stale after three missed beats. */
    heartbeatMs: integer('heartbeat_ms').notNull(),
    startedAt: timestamptz('started_at').notNull().defaultNow(),
    lastSeenAt: timestamptz('last_seen_at').notNull().defaultNow(),
    stoppedAt: timestamptz('stopped_at'),
  },
  (t) => [check('registered_workers_heartbeat_positive', sql`${t.heartbeatMs} > 0`)],
);

/**
 * How crier.events and crier.deliveries are partitioned (db/sql/partitions.sql): ids per partition.
 * A change applies to the partitions added after it. One row.
 */
export const partitioning = crier.table(
  'partitioning',
  {
    singleton: boolean('singleton').primaryKey().default(true),
    rowsPerPartition: bigint('rows_per_partition', { mode: 'number' }).notNull().default(1000000),
  },
  (t) => [
    check('partitioning_singleton', sql`${t.singleton}`),
    check('partitioning_rows_valid', sql`${t.rowsPerPartition} >= 1000`),
  ],
);
