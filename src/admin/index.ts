// The operator API: what the `crier` command does, as library calls. Each method is a thin wrapper
// over one module of src/admin, and most of those over one SQL function of the same name, so SQL
// users, the CLI and code share one implementation.
import type postgres from 'postgres';
import {
  catalogSettings, listCatalog, setCatalogValidation, setRejectUnknownTopics, showCatalogEntry,
} from '../catalog/registry.ts';
import { openClient, type Connection } from '../connection.ts';
import { checkSchemaName, defaultSchema } from '../schema-name.ts';
import type { AdminDb } from './db.ts';
import { getDelivery, listDead, type DeadFilter } from './dead.ts';
import { getEvent, listEvents, type EventFilter } from './events.ts';
import { prune, type PruneOptions } from './prune.ts';
import { replay, type ReplayOptions } from './replay.ts';
import { requeue, type RequeueOptions, type RequeueSelection } from './requeue.ts';
import { subscriptionStats } from './stats.ts';
import {
  createSubscription, listSubscriptions, pauseSubscription, removeSubscription, resumeSubscription,
  type CreateSubscriptionOptions, type RemoveOptions,
} from './subscriptions.ts';
import { tailEvents, type TailOptions } from './tail.ts';
import { listWorkers, type WorkerFilter } from './workers.ts';

export interface AdminOptions {
  /** A connection URL, or a postgres.js client to share (it is not closed by close()). */
  connection: Connection;
  schema?: string;
}

export function createAdmin(options: AdminOptions) {
  const schema = checkSchemaName(options.schema ?? defaultSchema);
  const owns = typeof options.connection === 'string';
  const sql: postgres.Sql<any> = owns
    ? openClient(options.connection, { max: 3, connect_timeout: 10, idle_timeout: 30 })
    : (options.connection as postgres.Sql<any>);
  const db: AdminDb = { sql, schema };
  return {
    schema,
    /** One row per subscription: pending, running, retrying, dead, done, lag, paused, live workers, stuck. */
    stats: (subscription?: string) => subscriptionStats(db, subscription),
    /** Worker processes: the live ones and those gone within the last hour (crier.workers). */
    listWorkers: (filter?: WorkerFilter) => listWorkers(db, filter),
    /** Every subscription with its topics and policies. */
    listSubscriptions: () => listSubscriptions(db),
    /**
     * Declares a subscription ahead of its workers (events published from now on are kept for it),
     * or changes an existing one's topics and policies; `from` also backfills history.
     */
    createSubscription: (subscription: CreateSubscriptionOptions) => createSubscription(db, subscription),
    pause: (subscription: string) => pauseSubscription(db, subscription),
    resume: (subscription: string) => resumeSubscription(db, subscription),
    removeSubscription: (subscription: string, remove?: RemoveOptions) => removeSubscription(db, subscription, remove),
    /** Streams events (newest first by default) with a count of their deliveries by state. */
    listEvents: (filter?: EventFilter) => listEvents(db, filter),
    /** One event, every delivery of it, and the causation chain it belongs to. */
    getEvent: (ref: string | number) => getEvent(db, ref),
    /** Follows new events until `signal` aborts. */
    tailEvents: (tail?: TailOptions) => tailEvents(db, tail),
    /** Streams dead letters, most recently dead first. */
    listDead: (filter?: DeadFilter, limit?: number) => listDead(db, filter, limit),
    getDelivery: (id: string | number) => getDelivery(db, id),
    requeue: (selection: RequeueSelection, requeueOptions?: RequeueOptions) => requeue(db, selection, requeueOptions),
    replay: (replayOptions: ReplayOptions) => replay(db, replayOptions),
    prune: (pruneOptions: PruneOptions) => prune(db, pruneOptions),
    /** The registered event catalog (docs/catalog.md), one row per topic. */
    listCatalog: () => listCatalog(sql, { schema }),
    /** One registered topic with each version's JSON Schema (CRIER_UNKNOWN_TOPIC, with a suggestion). */
    showCatalogEntry: (topic: string) => showCatalogEntry(sql, topic, { schema }),
    catalogSettings: () => catalogSettings(sql, { schema }),
    /** SQL-side validation of inserts for one registered topic. */
    setCatalogValidation: (topic: string, validate: boolean) => setCatalogValidation(sql, topic, validate, { schema }),
    /** Whether inserts must name a registered topic. */
    setRejectUnknownTopics: (reject: boolean) => setRejectUnknownTopics(sql, reject, { schema }),
    /** Closes the connection pool if the admin opened it (`now`: without waiting for running queries). */
    async close(now = false): Promise<void> {
      if (owns) await sql.end({ timeout: now ? 0 : 5 });
    },
  };
}

export type Admin = ReturnType<typeof createAdmin>;
export type { DeadFilter, DeadLetter } from './dead.ts';
export type { DeliveryRecord, EventDetail, EventFilter, EventRecord, EventSummary } from './events.ts';
export type { PruneOptions, PruneResult } from './prune.ts';
export type { ReplayOptions, ReplayResult } from './replay.ts';
export type { RequeueOptions, RequeueResult, RequeueSelection, RequeuedDelivery } from './requeue.ts';
export type { SubscriptionStats } from './stats.ts';
export type { CreateSubscriptionOptions, CreateSubscriptionResult, RemoveOptions, SubscriptionInfo } from './subscriptions.ts';
export type { TailOptions } from './tail.ts';
export type { WorkerFilter, WorkerInfo } from './workers.ts';
