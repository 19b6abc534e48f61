// A RelayTarget for RabbitMQ: publishes to an exchange on a confirm channel, the routing key being
// the message's destination, and resolves when the broker acks. One connection and channel, opened
// on first use and again after the broker closes them (restart, network): a publish that finds the
// broker down fails at once and the delivery retries with its subscription's backoff.
import type { ConfirmChannel, ChannelModel } from 'amqplib';
import { brokerError, loadPeer } from './peer.ts';
import type { RelayMessage, RelayTarget } from './target.ts';

export interface RabbitMqTargetOptions {
  /** amqp://user:password@host:port/vhost */
  url: string;
  /** The exchange to publish to. */
  exchange: string;
  /** Declare the exchange (durable, this type) on connect (default 'topic'); false to use it as it is. */
  assertExchange?: 'topic' | 'direct' | 'fanout' | 'headers' | false;
  /**
   * Fail (and so retry, then dead-letter) a message that no queue is bound to receive, rather than
   * let RabbitMQ drop it (the AMQP mandatory flag; default false: an exchange drops what nobody
   * listens to, as it would for any other producer).
   */
  mandatory?: boolean;
  /** Persistent messages (delivery mode 2; default true): they survive a broker restart in durable queues. */
  persistent?: boolean;
}

interface Link {
  connection: ChannelModel;
  channel: ConfirmChannel;
  /** Message ids RabbitMQ returned as unroutable (mandatory): their confirm then fails. */
  returned: Set<string>;
  /** Set while the socket's write buffer is full: publishes wait for 'drain'. */
  drained: Promise<void> | undefined;
}

export function rabbitmqTarget(options: RabbitMqTargetOptions): RelayTarget {
  const name = `rabbitmq exchange "${options.exchange}"`;
  const exchangeType = options.assertExchange ?? 'topic';
  let link: Promise<Link> | undefined;
  let closed = false;

  /** Opens a connection and confirm channel; `forget` drops them once the broker closes either. */
  async function open(forget: () => void): Promise<Link> {
    const amqp = await loadPeer('amqplib', () => import('amqplib'), 'relaying to RabbitMQ');
    // A broker that accepts the socket but never answers (stopping, overloaded) must not hang us.
    const connection = await amqp.connect(options.url, { timeout: 10_000 });
    // Listeners first: an error event without a listener would end the process.
    connection.on('error', forget);
    connection.on('close', forget);
    try {
      const channel = await connection.createConfirmChannel();
      const state: Link = { connection, channel, returned: new Set(), drained: undefined };
      channel.on('error', forget);
      channel.on('close', forget);
      channel.on('return', (message) => {
        if (typeof message.properties.messageId === 'string') state.returned.add(message.properties.messageId);
      });
      if (exchangeType !== false) await channel.assertExchange(options.exchange, exchangeType, { durable: true });
      return state;
    } catch (error) {
      await connection.close().catch(() => {});
      throw error;
    }
  }

  function connected(): Promise<Link> {
    if (closed) return Promise.reject(brokerError(name, 'the relay target is closed'));
    if (link === undefined) {
      // A failed connect is forgotten too, so the next publish (the retry) tries again.
      const forget = () => {
        if (link === opening) link = undefined;
      };
      const opening: Promise<Link> = open(forget);
      link = opening;
      opening.catch(forget);
    }
    return link;
  }

  return {
    name,
    async publish(message: RelayMessage, signal?: AbortSignal): Promise<void> {
      let state: Link;
      try {
        state = await connected();
        if (state.drained) await state.drained;
      } catch (error) {
        throw brokerError(name, error);
      }
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(brokerError(name, signal!.reason ?? 'aborted while waiting for the confirm'));
        if (signal?.aborted) return onAbort();
        signal?.addEventListener('abort', onAbort, { once: true });
        const properties = {
          messageId: message.id,
          correlationId: message.correlationId,
          contentType: 'application/json',
          type: message.topic,
          timestamp: Math.floor(message.createdAt.getTime() / 1000),
          persistent: options.persistent ?? true,
          mandatory: options.mandatory ?? false,
          headers: message.headers,
        };
        const confirmed = (error: unknown) => {
          signal?.removeEventListener('abort', onAbort);
          // A returned message is acked after its return: the ack then means "not routed".
          if (state.returned.delete(message.id)) reject(brokerError(name, `no queue is bound for routing key "${message.destination}" (mandatory)`));
          else if (error) reject(brokerError(name, error));
          else resolve();
        };
        let written: boolean;
        try {
          written = state.channel.publish(options.exchange, message.destination, message.body, properties, confirmed);
        } catch (error) {
          // Thrown when the channel has just closed (its close event may not have reached us yet).
          signal?.removeEventListener('abort', onAbort);
          return reject(brokerError(name, error));
        }
        if (!written && !state.drained) {
          // The socket's buffer is full: later publishes wait until it drains (or the channel
          // closes, and they fail), so a slow broker holds at most one buffer of messages here.
          state.drained = new Promise((done) => {
            const settle = () => {
              state.drained = undefined;
              state.channel.off('drain', settle).off('close', settle);
              done();
            };
            state.channel.once('drain', settle).once('close', settle);
          });
        }
      });
    },
    async close() {
      closed = true;
      const current = link;
      link = undefined;
      const state = await current?.catch(() => undefined);
      await state?.connection.close().catch(() => {});
    },
  };
}
