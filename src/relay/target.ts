// What the relay hands a broker, and what a broker target must do with it. A target publishes one
// message and resolves only when the broker has confirmed it (stored it, or routed it to durable
// queues); a rejection fails the delivery, so crier's retry, backoff and dead letters apply. A new
// broker (Kafka, ...) is one more implementation of RelayTarget.
import type { CrierEvent } from '../worker/event.ts';

/** One event as it leaves crier: everything a broker needs, already named the broker's way. */
export interface RelayMessage {
  /** The event's uuid: the broker's message id (JetStream Nats-Msg-Id, AMQP message_id). */
  id: string;
  /** The crier topic. */
  topic: string;
  /** Where the broker files it: a JetStream subject or an AMQP routing key (see RelayOptions.destination). */
  destination: string;
  /** The event's key (ordered subscriptions keep same-key events in order); a Kafka target would partition by it. */
  key: string | null;
  /** The payload as JSON text, UTF-8. */
  body: Buffer;
  /** String headers carried over from the event (see relayHeaders). */
  headers: Record<string, string>;
  correlationId: string;
  createdAt: Date;
}

export interface RelayTarget {
  /** A name for logs ("jetstream nats://127.0.0.1:4222", "rabbitmq exchange crier"). */
  readonly name: string;
  /**
   * Publishes and resolves once the broker confirmed. Rejects when it did not (broker down, nack,
   * no stream for the subject, timeout, `signal` aborted): the delivery is retried later.
   */
  publish(message: RelayMessage, signal?: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

/**
 * The headers a relayed message carries: crier's event id, uuid and topic, the key, correlation and
 * causation. The event's own headers whose values are strings, numbers or booleans go along (as
 * text) under their own names: W3C trace context (traceparent, tracestate) among them.
 */
export function relayHeaders(event: CrierEvent): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(event.headers)) {
    if (name === 'correlationId' || name === 'causationId') continue;
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') headers[name] = String(value);
  }
  headers['crier-event-id'] = event.id;
  headers['crier-event-uuid'] = event.uuid;
  headers['crier-topic'] = event.topic;
  headers['crier-correlation-id'] = event.correlationId;
  if (event.causationId !== null) headers['crier-causation-id'] = event.causationId;
  if (event.key !== null) headers['crier-key'] = event.key;
  if (event.version !== 1) headers['crier-version'] = String(event.version);
  return headers;
}

/**
 * How a name becomes another (a topic a subject, a routing key a topic): a function, or a template
 * where `{name}` stands for the name ("crier.{name}"); none keeps the name as it is.
 */
export type NameMapping = string | ((name: string) => string) | undefined;

export function mapName(mapping: NameMapping, name: string): string {
  if (mapping === undefined) return name;
  if (typeof mapping === 'function') return mapping(name);
  return mapping.replaceAll('{name}', name);
}

export function toRelayMessage(event: CrierEvent, destination: NameMapping): RelayMessage {
  return {
    id: event.uuid,
    topic: event.topic,
    destination: mapName(destination, event.topic),
    key: event.key,
    body: Buffer.from(JSON.stringify(event.payload)),
    headers: relayHeaders(event),
    correlationId: event.correlationId,
    createdAt: event.createdAt,
  };
}
