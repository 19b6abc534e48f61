// The tables of schema "crier", as Drizzle sees them. drizzle-kit generates the table migrations
// from this file; the trigger functions, the SQL API and the views are hand-written SQL in custom
// migrations beside the generated ones (db/migrations). Names here are a public contract: operators
// and SQL users query crier.events, crier.subscriptions and crier.deliveries directly.
import { sql } from 'drizzle-orm';
import {
  bigint,
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

/** The append-only log: one row per published event, never updated. */
export const events = crier.table(
  'events',
  {
    id: bigint('id', { mode: 'bigint' }).primaryKey().generatedAlwaysAsIdentity(),
    uuid: uuid('uuid').notNull().unique().defaultRandom(),
    topic: text('topic').notNull(),
    key: text('key'),
    payload: jsonb('payload').notNull(),
    headers: jsonb('headers').notNull().default({}),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
  },
  (t) => [
    check(
      'events_topic_valid',
      sql`length(${t.topic}) <= 255 and ${t.topic} ~ '^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$'`,
    ),
    check('events_headers_object', sql`jsonb_typeof(${t.headers}) = 'object'`),
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
  },
  (t) => [
    check('subscriptions_name_valid', sql`${t.name} ~ '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$'`),
    check('subscriptions_max_attempts_positive', sql`${t.maxAttempts} >= 1`),
    check('subscriptions_backoff_valid', sql`${t.backoffBaseMs} >= 0 and ${t.backoffMaxMs} >= ${t.backoffBaseMs}`),
    check('subscriptions_lease_positive', sql`${t.leaseMs} >= 100`),
  ],
);

/**
 * One row per event x matching subscription: the state of that subscription's work on that event.
 * States: pending -> running -> done | pending (retry) | dead. See docs/delivery-states.md.
 */
export const deliveries = crier.table(
  'deliveries',
  {
    id: bigint('id', { mode: 'bigint' }).primaryKey().generatedAlwaysAsIdentity(),
    eventId: bigint('event_id', { mode: 'bigint' }).notNull(),
    subscription: text('subscription').notNull(),
    state: text('state', { enum: ['pending', 'running', 'done', 'dead'] }).notNull().default('pending'),
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
  },
  (t) => [
    check('deliveries_state_valid', sql`${t.state} in ('pending', 'running', 'done', 'dead')`),
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
  ],
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
 * worker of a matching subscription is parked, so a busy system never takes the NOTIFY lock.
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
