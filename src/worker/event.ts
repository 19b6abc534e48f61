// What a handler receives: the event as published, and the context of this attempt at it.
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

export interface HandlerContext {
  subscription: string;
  deliveryId: string;
  /** 1 on the first attempt. */
  attempt: number;
  maxAttempts: number;
  /** Aborted when the handler times out, the lease is lost, or shutdown gives up waiting. */
  signal: AbortSignal;
}

export type Handler<P = unknown, T extends string = string> = (
  event: CrierEvent<P, T>,
  context: HandlerContext,
) => unknown | Promise<unknown>;

export function toEvent(row: ClaimedDelivery): CrierEvent {
  const headers = row.headers;
  const header = (name: string) => (typeof headers[name] === 'string' ? (headers[name] as string) : null);
  return {
    id: row.eventId,
    uuid: row.eventUuid,
    topic: row.topic,
    key: row.key,
    payload: row.payload,
    headers,
    version: row.version,
    correlationId: header('correlationId') ?? row.eventUuid,
    causationId: header('causationId'),
    createdAt: row.createdAt,
  };
}
