// The bridge's core, whatever the broker: messages come in, are published into crier in batches
// (one transaction each, the broker's message id as idempotency key), and only then acked to the
// broker. A crash before the ack makes the broker redeliver; the idempotency key turns the
// redelivery into a no-op, so crier holds each message once. While Postgres is away the batch is
// retried with growing delays and nothing more is acked; the broker's prefetch (unacked messages
// per consumer) bounds what waits here.
import { createHash } from 'node:crypto';
import type postgres from 'postgres';
import { CrierError } from '../errors.ts';
import { errorMessage, type Logger } from '../logger.ts';
import { publishEvents, type EventInput } from '../publish.ts';
import { inSchema } from '../schema-name.ts';
import { isValidTopic } from '../topics.ts';
import { mapName, type NameMapping } from '../relay/target.ts';

/** A broker message on its way into crier, with what to tell the broker once its fate is known. */
export interface IncomingMessage {
  /**
   * The broker's message id (AMQP message_id, Nats-Msg-Id, ...): the idempotency key. Null when the
   * producer set none: the message is published without one, so a redelivery can make a second event.
   */
  id: string | null;
  /** Routing key or subject: becomes the topic through BridgeOptions.topic. */
  source: string;
  body: Buffer;
  /** Broker headers; those with string, number or boolean values become event headers. */
  headers: Record<string, unknown>;
  correlationId: string | null;
  key: string | null;
  /** The event is committed: the broker may forget the message. */
  ack(): void;
  /** Not published (Postgres away at shutdown): the broker should deliver it again. */
  retry(): void;
  /** It can never become an event (bad topic, not JSON): the broker dead-letters or drops it. */
  reject(reason: string): void;
}

export interface BridgeOptions {
  /** Routing key or subject → crier topic: a template ("legacy.{name}") or a function (default: as it is). */
  topic?: NameMapping;
  /** Messages published per transaction at most (default 100). */
  batchSize?: number;
  /** How long a partial batch waits for more messages before it is published (default 5 ms). */
  maxWait?: number;
  logger: Logger;
}

export interface BridgeStats {
  /** Events inserted into crier. */
  published: number;
  /** Messages whose id crier had already seen (redeliveries): acked, nothing inserted. */
  duplicates: number;
  /** Messages that could not become events (see IncomingMessage.reject). */
  rejected: number;
  /**
   * Messages this crier's own relay sent (their crier-event-uuid header names an event of this
   * database): acked, not published again, so relaying and bridging one exchange makes no loop.
   */
  echoes: number;
}

export interface Bridge {
  readonly stats: BridgeStats;
  /** Stops consuming, publishes and acks what was received (or gives it back), closes the broker connection. */
  stop(): Promise<void>;
}

export class BridgeBatcher {
  readonly stats: BridgeStats = { published: 0, duplicates: 0, rejected: 0, echoes: 0 };
  private pending: IncomingMessage[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private stopping = false;
  private warnedNoId = false;
  private echoCheckOff = false;
  private readonly batchSize: number;
  private readonly maxWait: number;

  constructor(
    private readonly sql: postgres.Sql<any>,
    private readonly schema: string,
    private readonly options: BridgeOptions,
  ) {
    this.batchSize = options.batchSize ?? 100;
    this.maxWait = options.maxWait ?? 5;
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1) throw new CrierError('CRIER_INVALID_OPTION', 'bridge batchSize must be an integer >= 1');
  }

  add(message: IncomingMessage): void {
    this.pending.push(message);
    if (this.pending.length >= this.batchSize) this.flushSoon(0);
    else this.flushSoon(this.maxWait);
  }

  /** Publishes what is pending. With `giveUpAt`, a batch Postgres will not take by then is given back. */
  async drain(giveUpAt: number): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.flushing = this.flushing.then(() => this.flush(giveUpAt));
    await this.flushing;
  }

  private flushSoon(delay: number): void {
    if (this.timer !== undefined && delay > 0) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // One batch at a time: messages keep their order, and a batch waits while Postgres is away.
      this.flushing = this.flushing.then(() => this.flush(Infinity));
    }, delay);
  }

  private async flush(giveUpAt: number): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, this.batchSize);
      await this.publish(batch, giveUpAt);
    }
  }

  private async publish(batch: IncomingMessage[], giveUpAt: number): Promise<void> {
    const events: EventInput[] = [];
    const accepted: IncomingMessage[] = [];
    for (const message of batch) {
      const event = this.toEvent(message);
      if (typeof event === 'string') {
        this.stats.rejected++;
        this.options.logger.error({ source: message.source, messageId: message.id, error: event }, `bridge: message ${message.id} from "${message.source}" rejected: ${event}`);
        message.reject(event);
      } else {
        events.push(event);
        accepted.push(message);
      }
    }
    for (let failures = 0; accepted.length > 0; failures++) {
      try {
        const echoes = await this.echoes(accepted);
        const fresh = events.filter((_, i) => !echoes.has(i));
        const published = fresh.length === 0 ? [] : await this.sql.begin((tx) => publishEvents(tx, this.schema, fresh));
        for (const event of published) event.duplicate ? this.stats.duplicates++ : this.stats.published++;
        this.stats.echoes += echoes.size;
        for (const message of accepted) message.ack();
        return;
      } catch (error) {
        if (isPoison(error) && accepted.length > 1) {
          // One bad message fails the whole statement: publish them one by one to find it.
          for (const message of accepted) await this.publish([message], giveUpAt);
          return;
        }
        if (isPoison(error)) {
          this.stats.rejected++;
          this.options.logger.error({ source: accepted[0]!.source, messageId: accepted[0]!.id, error: errorMessage(error) }, `bridge: message ${accepted[0]!.id} rejected: ${errorMessage(error)}`);
          accepted[0]!.reject(errorMessage(error));
          return;
        }
        const delay = Math.min(5000, 100 * 2 ** Math.min(failures, 6));
        if (this.stopping && Date.now() + delay > giveUpAt) {
          this.options.logger.warn({ messages: accepted.length, error: errorMessage(error) }, `bridge: giving ${accepted.length} messages back to the broker (${errorMessage(error)})`);
          for (const message of accepted) message.retry();
          return;
        }
        if (failures === 0) this.options.logger.warn({ error: errorMessage(error) }, `bridge: publishing into crier failed (${errorMessage(error)}); retrying, nothing is acked meanwhile`);
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  /** Positions of the messages whose crier-event-uuid is an event of this database. */
  private async echoes(messages: IncomingMessage[]): Promise<Set<number>> {
    const uuids = messages.map((m) => m.headers['crier-event-uuid']).map((u) => (typeof u === 'string' && uuidPattern.test(u) ? u : null));
    if (this.echoCheckOff || uuids.every((u) => u === null)) return new Set();
    let rows;
    try {
      rows = await this.sql.unsafe(inSchema('SELECT uuid::text AS uuid FROM crier.events WHERE uuid = ANY($1::text[]::uuid[])', this.schema), [
        `{${uuids.filter((u) => u !== null).join(',')}}`,
      ]);
    } catch (error) {
      if ((error as { code?: string }).code !== '42501') throw error;
      // A publisher-only role may not read events: bridge on, without the loop guard.
      this.echoCheckOff = true;
      this.options.logger.warn({ error: errorMessage(error) }, `bridge: cannot read crier.events (${errorMessage(error)}): messages this crier relayed out would be bridged in again; give the bridge's role SELECT on events, or do not bridge what you relay`);
      return new Set();
    }
    const known = new Set(rows.map((r) => r.uuid as string));
    return new Set(uuids.flatMap((u, i) => (u !== null && known.has(u) ? [i] : [])));
  }

  private toEvent(message: IncomingMessage): EventInput | string {
    let topic: string;
    try {
      topic = mapName(this.options.topic, message.source);
    } catch (error) {
      return `the topic mapping failed: ${errorMessage(error)}`;
    }
    if (!isValidTopic(topic)) return `${JSON.stringify(topic)} is not a valid crier topic (dot-separated segments of letters, digits, "_" and "-")`;
    let payload: unknown;
    try {
      payload = JSON.parse(message.body.toString('utf8'));
    } catch (error) {
      return `the body is not JSON (${errorMessage(error)})`;
    }
    if (payload === null) return 'the body is JSON null; crier payloads are objects, arrays or values';
    const headers: Record<string, string | number | boolean> = {};
    for (const [name, value] of Object.entries(message.headers)) {
      if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') headers[name] = value;
    }
    if (message.correlationId !== null) headers.correlationId = message.correlationId;
    // Where it came from, for handlers that deduplicate against the old consumers during a migration.
    headers['crier-source'] = message.source;
    if (message.id !== null) headers['crier-source-message-id'] = message.id;
    if (message.id === null) {
      if (!this.warnedNoId) this.options.logger.warn({ source: message.source }, `bridge: messages from "${message.source}" have no message id; they are published without an idempotency key (a redelivery makes a second event)`);
      this.warnedNoId = true;
      return { topic, payload, headers, key: message.key };
    }
    // Keys are scoped by topic and at most 255 characters: a longer id is hashed.
    const idempotencyKey = message.id.length <= 255 ? message.id : `sha256:${createHash('sha256').update(message.id).digest('hex')}`;
    return { topic, payload, headers, key: message.key, idempotencyKey };
  }
}

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Errors that publishing this message again can never fix: the message cannot become an event. */
function isPoison(error: unknown): boolean {
  return error instanceof CrierError && (error.code.startsWith('CRIER_INVALID_') || error.code === 'CRIER_UNKNOWN_TOPIC');
}
