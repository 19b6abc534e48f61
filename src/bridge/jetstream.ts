// Bridge in from a JetStream durable consumer: pulls messages, publishes each into crier and acks
// it after the commit. The idempotency key is the Nats-Msg-Id header when the producer set one,
// else the message's stream and sequence (unique in the stream, the same on every redelivery).
// The NATS client reconnects by itself and the consumer resumes where the acks left it.
import type { JsMsg } from '@nats-io/jetstream';
import type postgres from 'postgres';
import { openClient, type Connection } from '../connection.ts';
import { CrierError } from '../errors.ts';
import { errorMessage, toLogger, type Logger } from '../logger.ts';
import { checkSchemaName, defaultSchema } from '../schema-name.ts';
import { loadPeer } from '../relay/peer.ts';
import type { NameMapping } from '../relay/target.ts';
import { BridgeBatcher, type Bridge, type IncomingMessage } from './bridge.ts';

export interface JetStreamBridgeOptions {
  connection: Connection;
  schema?: string;
  /** NATS server(s), e.g. "127.0.0.1:4222". */
  servers: string | string[];
  stream: string;
  /** The durable consumer's name; created (explicit acks) when it does not exist. */
  consumer: string;
  /** When the consumer is created: only these subjects (default: the whole stream). */
  filterSubjects?: string[];
  /** Subject → crier topic (default: the subject). */
  topic?: NameMapping;
  /** A header whose value becomes the event's key (default: none). */
  keyHeader?: string;
  batchSize?: number;
  /** Messages pulled and not yet acked at most (default 2 × batchSize). */
  prefetch?: number;
  connectOptions?: Record<string, unknown>;
  logger?: Logger | false;
}

export async function startJetStreamBridge(options: JetStreamBridgeOptions): Promise<Bridge> {
  const nats = await loadPeer('@nats-io/transport-node', () => import('@nats-io/transport-node'), 'bridging from JetStream');
  const { jetstream, jetstreamManager, AckPolicy } = await loadPeer('@nats-io/jetstream', () => import('@nats-io/jetstream'), 'bridging from JetStream');
  const logger = toLogger(options.logger);
  const schema = checkSchemaName(options.schema ?? defaultSchema);
  const servers = Array.isArray(options.servers) ? options.servers : options.servers.split(',');
  const batchSize = options.batchSize ?? 100;

  const nc = await nats.connect({ servers, maxReconnectAttempts: -1, reconnectTimeWait: 250, ...options.connectOptions });
  let consumer;
  try {
    const jsm = await jetstreamManager(nc);
    try {
      await jsm.consumers.info(options.stream, options.consumer);
    } catch (error) {
      if (!/consumer not found/i.test(errorMessage(error))) throw error;
      await jsm.consumers.add(options.stream, {
        durable_name: options.consumer,
        ack_policy: AckPolicy.Explicit,
        ...(options.filterSubjects?.length ? { filter_subjects: options.filterSubjects } : {}),
      });
    }
    consumer = await jetstream(nc).consumers.get(options.stream, options.consumer);
  } catch (error) {
    await nc.close();
    throw new CrierError('CRIER_BROKER', `jetstream consumer "${options.stream}/${options.consumer}": ${errorMessage(error)}`, { cause: error });
  }

  const ownsSql = typeof options.connection === 'string';
  const sql: postgres.Sql<any> = ownsSql ? openClient(options.connection, { max: 2, connect_timeout: 10, fetch_types: false }) : (options.connection as postgres.Sql<any>);
  const batcher = new BridgeBatcher(sql, schema, { topic: options.topic, batchSize, logger });
  const messages = await consumer.consume({ max_messages: options.prefetch ?? 2 * batchSize });
  const running = (async () => {
    for await (const message of messages) batcher.add(toIncoming(message, options.keyHeader));
  })();
  logger.info({ stream: options.stream, consumer: options.consumer }, `bridge: consuming jetstream ${options.stream}/${options.consumer}`);

  let stopped: Promise<void> | undefined;
  return {
    stats: batcher.stats,
    stop: () =>
      (stopped ??= (async () => {
        messages.stop();
        await running.catch(() => {});
        await batcher.drain(Date.now() + 5000);
        // Drain flushes the acks just sent before the connection closes.
        await nc.drain().catch(() => nc.close());
        if (ownsSql) await sql.end({ timeout: 5 });
      })()),
  };
}

function toIncoming(message: JsMsg, keyHeader: string | undefined): IncomingMessage {
  const headers: Record<string, unknown> = {};
  for (const [name, values] of message.headers ?? []) if (name !== 'Nats-Msg-Id') headers[name] = values.join(',');
  const msgId = message.headers?.get('Nats-Msg-Id');
  const key = keyHeader !== undefined ? (message.headers?.get(keyHeader) || null) : null;
  const correlation = message.headers?.get('crier-correlation-id');
  return {
    id: msgId ? msgId : `${message.info.stream}:${message.seq}`,
    source: message.subject,
    body: Buffer.from(message.data),
    headers,
    correlationId: correlation ? correlation : null,
    key,
    ack: () => message.ack(),
    retry: () => message.nak(),
    reject: (reason) => message.term(reason),
  };
}
