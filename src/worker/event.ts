// What a handler receives: the event as published, and the context of this attempt at it.
import type postgres from 'postgres';
import type { Executor } from '../executor.ts';
import type { EventInput, PublishedEvent, PublishOptions } from '../publish.ts';
import type { ClaimedDelivery } from './protocol.ts';

export interface CrierEvent<P = unknown, T extends string = string> {
  /** Position in the log (bigint as a string). */
  id: string;
  uuid: string;
  topic: T;
  key: string | null;
  payload: P;
  headers: Record<string, unknown>;
  /**
   * The schema version the payload was published with (1 unless a catalog or the producer set it).
   * Handlers of a catalog always receive the latest version's shape, upcast when this is older.
   */
  version: number;
  /** Groups a conversation: the correlationId header, or this event's uuid when it starts one. */
  correlationId: string;
  /** The event that caused this one, when it was published while handling another. */
  causationId: string | null;
  createdAt: Date;
}

/**
 * One attempt's context. Pass `ctx` itself to helpers or destructure what you need; a spread copy
 * (`{ ...ctx }`) keeps the attempt's facts but not `publish`, `markProcessed` and the other
 * functions, which are made when read.
 */
export interface HandlerContext {
  subscription: string;
  deliveryId: string;
  /** 1 on the first attempt. */
  attempt: number;
  maxAttempts: number;
  /** Aborted when the handler times out, the lease is lost, or shutdown gives up waiting. */
  signal: AbortSignal;
  /**
   * The handler's own transaction, for subscriptions declared with `transactional: true`: its
   * writes and the ack commit together, or roll back together when the handler throws. Use it
   * with postgres.js directly, or with Drizzle as `drizzle(ctx.tx)`. Throws for other subscriptions.
   */
  readonly tx: postgres.TransactionSql<{}>;
  /**
   * Publishes an event caused by this one: correlationId and causationId headers are set. In a
   * transactional handler it joins ctx.tx (published if and only if the ack commits); otherwise it
   * commits at once.
   */
  publish<P>(topic: string, payload: P, options?: Omit<PublishOptions, 'causedBy'>): Promise<PublishedEvent>;
  publishMany(events: readonly Omit<EventInput, 'causedBy'>[]): Promise<PublishedEvent[]>;
  /**
   * Consumer-side deduplication (crier.processed): records that this subscription processed this
   * event. Resolves false when it was already recorded: a redelivery, skip the work. Pass your own
   * transaction to record it atomically with your writes. Costs one indexed insert per delivery.
   */
  markProcessed(tx?: Executor): Promise<boolean>;
  /** Whether markProcessed was already recorded for this subscription and event. */
  isProcessed(): Promise<boolean>;
}

export type Handler<P = unknown, T extends string = string> = (
  event: CrierEvent<P, T>,
  context: HandlerContext,
) => unknown | Promise<unknown>;

export function toEvent(row: ClaimedDelivery): CrierEvent {
  const headers = row.headers;
  return {
    id: row.eventId,
    uuid: row.eventUuid,
    topic: row.topic,
    key: row.key,
    payload: row.payload,
    headers,
    version: row.version,
    correlationId: stringHeader(headers, 'correlationId') ?? row.eventUuid,
    causationId: stringHeader(headers, 'causationId'),
    createdAt: row.createdAt,
  };
}

function stringHeader(headers: Record<string, unknown>, name: string): string | null {
  const value = headers[name];
  return typeof value === 'string' ? value : null;
}
