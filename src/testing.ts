// Test helpers (import from "crier/testing"): run handlers without starting workers.
//   invoke()          calls a subscription's handler on an event built in memory, with a fake
//                     context: no database. A catalog subscription still parses and upcasts, so
//                     poison payloads and old versions can be tested too.
//   drain()           claims every due delivery of some subscriptions in the real database, runs
//                     the handlers one at a time and acks them as a worker would (done / retry / dead),
//                     with the worker's own handler context (ctx.publish, markProcessed) and, for
//                     transactional subscriptions, the worker's own transaction (ctx.tx carries the ack).
//   publishAndDrain() declares the subscriptions, publishes in one transaction, then drains.
// Never used by the library itself; nothing here is tuned for production.
import { randomBytes, randomUUID } from 'node:crypto';
import type postgres from 'postgres';
import type { Catalog } from './catalog/define.ts';
import type { CatalogSubscription } from './catalog/typed-crier.ts';
import { openClient, type Connection } from './connection.ts';
import { CrierError, fromDatabaseError } from './errors.ts';
import { checkSchemaName, defaultSchema } from './schema-name.ts';
import { declareSubscriptions, retrySchedule, toSubscriptionRow } from './subscriptions.ts';
import { toEvent, type CrierEvent, type HandlerContext } from './worker/event.ts';
import { AttemptContext, type ContextSources } from './worker/handler-context.ts';
import { Protocol, type ClaimedDelivery } from './worker/protocol.ts';
import { describeFailure } from './worker/failure.ts';
import { runTransactional } from './worker/transactional.ts';
import type { SubscriptionDefinition } from './worker/worker.ts';

/** An event as a test writes it: topic and payload, the rest defaulted. */
export type TestEventInput = Partial<Omit<CrierEvent, 'topic' | 'payload'>> & { topic: string; payload: unknown };

/**
 * A complete event with test defaults. `version` defaults to the topic's latest version when the
 * subscription belongs to a catalog (pass it to test an old stored version), otherwise 1.
 */
export function testEvent(input: TestEventInput, subscription?: SubscriptionDefinition): CrierEvent {
  const uuid = input.uuid ?? randomUUID();
  const catalog = (subscription as Partial<CatalogSubscription> | undefined)?.catalog as Catalog | undefined;
  return {
    id: '1',
    key: null,
    headers: {},
    version: catalog?.has(input.topic) ? catalog.entry(input.topic).latestVersion : 1,
    correlationId: uuid,
    causationId: null,
    createdAt: new Date(),
    ...input,
    uuid,
  };
}

/** A handler context for one first attempt; abort `signal` yourself to test cancellation. */
export function testContext(overrides: Partial<HandlerContext> = {}): HandlerContext {
  const needsDatabase = (what: string) => (): never => {
    throw new Error(`crier/testing: ctx.${what} needs a database; pass your own in testContext({ ${what} }) or use drain / publishAndDrain`);
  };
  return {
    subscription: 'test',
    deliveryId: '1',
    attempt: 1,
    maxAttempts: 5,
    signal: new AbortController().signal,
    get tx(): never {
      return needsDatabase('tx')();
    },
    publish: async () => needsDatabase('publish')(),
    publishMany: async () => needsDatabase('publishMany')(),
    markProcessed: async () => needsDatabase('markProcessed')(),
    isProcessed: async () => needsDatabase('isProcessed')(),
    ...overrides,
  };
}

/** Runs the subscription's handler on one event in memory; resolves with what it returns, or rejects. */
export async function invoke(
  subscription: SubscriptionDefinition,
  event: TestEventInput,
  context: Partial<HandlerContext> = {},
): Promise<unknown> {
  return subscription.handler(
    testEvent(event, subscription),
    testContext({ subscription: subscription.name, maxAttempts: subscription.maxAttempts ?? 5, ...context }),
  );
}

export interface DrainOptions {
  schema?: string;
  /** Written to crier.deliveries.worker (default "crier-testing:<random>"). */
  workerId?: string;
}

export interface DrainOutcome {
  subscription: string;
  deliveryId: string;
  eventId: string;
  topic: string;
  attempt: number;
  /** done; retry (back to pending, due later); dead. */
  outcome: 'done' | 'retry' | 'dead';
  error?: string;
}

export interface DrainResult {
  outcomes: DrainOutcome[];
  done: number;
  retried: number;
  dead: number;
}

/**
 * Handles, once, every delivery of these subscriptions that is due now, in the real database, as
 * a worker would (same claim, ack and dead-letter SQL), one handler at a time. A retried delivery
 * is due again only after its backoff, so each runs once per drain unless its backoff is zero.
 */
export async function drain(
  connection: Connection,
  subscriptions: readonly SubscriptionDefinition[],
  options: DrainOptions = {},
): Promise<DrainResult> {
  const schema = checkSchemaName(options.schema ?? defaultSchema);
  return withClient(connection, async (sql) => {
    await declareSubscriptions(sql, schema, subscriptions);
    const protocol = new Protocol(sql, schema, options.workerId ?? `crier-testing:${randomBytes(3).toString('hex')}`);
    const outcomes: DrainOutcome[] = [];
    for (const subscription of subscriptions) {
      const sources: ContextSources = { subscription: subscription.name, maxAttempts: toSubscriptionRow(subscription).maxAttempts, sql, schema };
      const schedule = retrySchedule(subscription);
      for (;;) {
        const claimed = await protocol.claim(subscription.name, 100);
        if (claimed.length === 0) break;
        for (const delivery of claimed) {
          const base = {
            subscription: subscription.name,
            deliveryId: delivery.deliveryId,
            eventId: delivery.eventId,
            topic: delivery.topic,
            attempt: delivery.attempt,
          };
          try {
            await handleOne(subscription, sources, protocol, delivery);
            outcomes.push({ ...base, outcome: 'done' });
          } catch (error) {
            if (error instanceof LeaseLost) throw error;
            const failure = describeFailure(error ?? new Error('handler threw a nullish value'), schedule, delivery.attempt);
            const [row] = await protocol.fail([{ deliveryId: delivery.deliveryId, attempt: delivery.attempt, ...failure }]);
            outcomes.push({ ...base, outcome: row?.state === 'dead' ? 'dead' : 'retry', error: failure.error });
          }
        }
      }
    }
    return {
      outcomes,
      done: outcomes.filter((o) => o.outcome === 'done').length,
      retried: outcomes.filter((o) => o.outcome === 'retry').length,
      dead: outcomes.filter((o) => o.outcome === 'dead').length,
    };
  });
}

/** The attempt's ack was refused: drain renews no leases, so a handler outran its lease. Not a handler failure. */
class LeaseLost extends CrierError {
  constructor(subscription: string, deliveryId: string) {
    super(
      'CRIER_INVALID_OPTION',
      `crier/testing: delivery ${deliveryId} of "${subscription}" lost its lease while its handler ran (drain renews no leases): give the subscription a longer lease, or run a worker`,
    );
  }
}

/**
 * One attempt, as the worker runs it: the same handler context, and for a transactional
 * subscription the same transaction, whose commit carries the ack (a throw rolls the handler's
 * writes back; the caller then records the failure). Resolves once acked; rejects with the failure.
 */
async function handleOne(subscription: SubscriptionDefinition, sources: ContextSources, protocol: Protocol, delivery: ClaimedDelivery): Promise<void> {
  const event = toEvent(delivery);
  const attempt = { signal: new AbortController().signal };
  if (subscription.transactional) {
    const outcome = await runTransactional(sources.sql, protocol, delivery, attempt.signal, (tx) =>
      subscription.handler(event, new AttemptContext(sources, delivery, event, attempt, tx)),
    );
    if (outcome === 'lease-lost') throw new LeaseLost(subscription.name, delivery.deliveryId);
    return;
  }
  await subscription.handler(event, new AttemptContext(sources, delivery, event, attempt));
  const done = await protocol.complete([delivery.deliveryId], [delivery.attempt]);
  if (!done.has(delivery.deliveryId)) throw new LeaseLost(subscription.name, delivery.deliveryId);
}

/**
 * Declares the subscriptions (so the events fan out to them), runs `publish` in one transaction,
 * commits, then drains: the whole path of an event, without a worker.
 */
export async function publishAndDrain(
  connection: Connection,
  subscriptions: readonly SubscriptionDefinition[],
  publish: (tx: postgres.TransactionSql) => Promise<unknown>,
  options: DrainOptions = {},
): Promise<DrainResult> {
  const schema = checkSchemaName(options.schema ?? defaultSchema);
  return withClient(connection, async (sql) => {
    await declareSubscriptions(sql, schema, subscriptions);
    await sql.begin((tx) => publish(tx));
    return drain(sql, subscriptions, options);
  });
}

async function withClient<T>(connection: Connection, use: (sql: postgres.Sql<any>) => Promise<T>): Promise<T> {
  const sql = typeof connection === 'string' ? openClient(connection, { max: 2 }) : connection;
  try {
    return await use(sql);
  } catch (error) {
    throw fromDatabaseError(error);
  } finally {
    if (typeof connection === 'string') await sql.end({ timeout: 5 });
  }
}
