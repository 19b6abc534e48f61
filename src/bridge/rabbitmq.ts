// Bridge in from RabbitMQ: consumes a queue with manual acks and a prefetch, publishes each message
// into crier (message_id as idempotency key) and acks it after the commit. Reconnects with growing
// delays when the broker goes away; what was unacked then is redelivered by RabbitMQ and
// deduplicated by crier.
import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import type postgres from 'postgres';
import { openClient, type Connection } from '../connection.ts';
import { errorMessage, toLogger, type Logger } from '../logger.ts';
import { checkSchemaName, defaultSchema } from '../schema-name.ts';
import { loadPeer } from '../relay/peer.ts';
import type { NameMapping } from '../relay/target.ts';
import { BridgeBatcher, type Bridge, type IncomingMessage } from './bridge.ts';

export interface RabbitMqBridgeOptions {
  /** Where crier is: a URL or a postgres.js client. */
  connection: Connection;
  schema?: string;
  /** amqp://user:password@host:port/vhost */
  url: string;
  queue: string;
  /**
   * Declare the queue (durable) and bind it to these exchanges and patterns before consuming. Without
   * bindings the queue must exist.
   */
  bindings?: readonly { exchange: string; pattern: string }[];
  /** Routing key → crier topic (default: the routing key). */
  topic?: NameMapping;
  /** An AMQP header whose value becomes the event's key (default: none). */
  keyHeader?: string;
  /** Messages published per crier transaction (default 100). */
  batchSize?: number;
  /** Unacked messages RabbitMQ sends at once (default 2 × batchSize): the bound on what waits here. */
  prefetch?: number;
  logger?: Logger | false;
}

export async function startRabbitMqBridge(options: RabbitMqBridgeOptions): Promise<Bridge> {
  const amqp = await loadPeer('amqplib', () => import('amqplib'), 'bridging from RabbitMQ');
  const logger = toLogger(options.logger);
  const schema = checkSchemaName(options.schema ?? defaultSchema);
  const ownsSql = typeof options.connection === 'string';
  const sql: postgres.Sql<any> = ownsSql ? openClient(options.connection, { max: 2, connect_timeout: 10, fetch_types: false }) : (options.connection as postgres.Sql<any>);
  const batchSize = options.batchSize ?? 100;
  const batcher = new BridgeBatcher(sql, schema, { topic: options.topic, batchSize, logger });
  const where = `rabbitmq queue "${options.queue}"`;

  let stopping = false;
  let current: { connection: ChannelModel; channel: Channel; consumerTag: string } | undefined;
  let wake: (() => void) | undefined;

  /** Connects, consumes, and resolves when the connection or channel is gone. */
  async function session(): Promise<void> {
    // A broker that accepts the socket but never answers (stopping, overloaded) must not hang us.
    const connection = await amqp.connect(options.url, { timeout: 10_000 });
    const gone = new Promise<void>((resolve) => {
      connection.on('error', () => {});
      connection.on('close', () => resolve());
      wake = resolve;
    });
    try {
      const channel = await connection.createChannel();
      channel.on('error', () => {});
      channel.on('close', () => void connection.close().catch(() => {}));
      if (options.bindings?.length) {
        await channel.assertQueue(options.queue, { durable: true });
        for (const b of options.bindings) await channel.bindQueue(options.queue, b.exchange, b.pattern);
      } else {
        await channel.checkQueue(options.queue);
      }
      await channel.prefetch(options.prefetch ?? 2 * batchSize);
      const { consumerTag } = await channel.consume(options.queue, (message) => {
        if (message === null) return void connection.close().catch(() => {}); // the queue was deleted: reconnect
        batcher.add(toIncoming(channel, message, options.keyHeader));
      }, { noAck: false });
      current = { connection, channel, consumerTag };
      logger.info({ queue: options.queue }, `bridge: consuming ${where}`);
    } catch (error) {
      await connection.close().catch(() => {});
      throw error;
    }
    await gone;
  }

  const running = (async () => {
    for (let failures = 0; !stopping; ) {
      try {
        await session();
        failures = 0;
        if (!stopping) logger.warn({ queue: options.queue }, `bridge: lost ${where}; reconnecting`);
      } catch (error) {
        if (failures++ === 0) logger.warn({ queue: options.queue, error: errorMessage(error) }, `bridge: cannot consume ${where} (${errorMessage(error)}); retrying`);
      }
      current = undefined;
      if (!stopping) await new Promise((resolve) => setTimeout(resolve, Math.min(5000, 100 * 2 ** Math.min(failures, 6))));
    }
  })();

  let stopped: Promise<void> | undefined;
  return {
    stats: batcher.stats,
    stop: () =>
      (stopped ??= (async () => {
        stopping = true;
        const open = current;
        await open?.channel.cancel(open.consumerTag).catch(() => {});
        await batcher.drain(Date.now() + 5000);
        await open?.connection.close().catch(() => {});
        wake?.();
        await running;
        if (ownsSql) await sql.end({ timeout: 5 });
      })()),
  };
}

function toIncoming(channel: Channel, message: ConsumeMessage, keyHeader: string | undefined): IncomingMessage {
  const { properties, fields } = message;
  const headers = { ...(properties.headers ?? {}) } as Record<string, unknown>;
  const key = keyHeader !== undefined && headers[keyHeader] != null ? String(headers[keyHeader]) : null;
  // A channel that closed meanwhile cannot take the ack: RabbitMQ redelivers, crier deduplicates.
  const settle = (action: () => void) => {
    try {
      action();
    } catch {}
  };
  return {
    id: typeof properties.messageId === 'string' && properties.messageId !== '' ? properties.messageId : null,
    source: fields.routingKey,
    body: message.content,
    headers,
    correlationId: typeof properties.correlationId === 'string' ? properties.correlationId : null,
    key,
    ack: () => settle(() => channel.ack(message)),
    retry: () => settle(() => channel.nack(message, false, true)),
    reject: () => settle(() => channel.nack(message, false, false)),
  };
}
