// A RelayTarget for NATS JetStream: publishes to a subject and resolves on the stream's PubAck. The
// event uuid goes as Nats-Msg-Id, so a message published twice within the stream's duplicate
// window (a relay that died between the PubAck and its ack to crier) is stored once. The NATS
// client reconnects by itself; a publish while it is away fails after `timeout` and is retried.
import type { NatsConnection } from '@nats-io/transport-node';
import type { JetStreamClient } from '@nats-io/jetstream';
import { brokerError, loadPeer } from './peer.ts';
import type { RelayMessage, RelayTarget } from './target.ts';

export interface JetStreamTargetOptions {
  /** NATS server(s), e.g. "127.0.0.1:4222" or "nats://a:4222,nats://b:4222". */
  servers: string | string[];
  /** How long to wait for the PubAck (default 5s). */
  timeout?: number;
  /** Passed to the NATS client's connect (user, pass, token, tls, ...). */
  connectOptions?: Record<string, unknown>;
}

export function jetstreamTarget(options: JetStreamTargetOptions): RelayTarget {
  const servers = Array.isArray(options.servers) ? options.servers : options.servers.split(',');
  const name = `jetstream ${servers.join(',')}`;
  let client: Promise<{ nc: NatsConnection; js: JetStreamClient; headers: typeof import('@nats-io/transport-node').headers }> | undefined;
  let closed = false;

  async function open() {
    const nats = await loadPeer('@nats-io/transport-node', () => import('@nats-io/transport-node'), 'relaying to JetStream');
    const { jetstream } = await loadPeer('@nats-io/jetstream', () => import('@nats-io/jetstream'), 'relaying to JetStream');
    // Keep reconnecting for ever: the relay outlives broker restarts.
    const nc = await nats.connect({ servers, maxReconnectAttempts: -1, reconnectTimeWait: 250, ...options.connectOptions });
    return { nc, js: jetstream(nc, { timeout: options.timeout ?? 5000 }), headers: nats.headers };
  }

  function connected() {
    if (closed) return Promise.reject(brokerError(name, 'the relay target is closed'));
    if (client === undefined) {
      const opening = open();
      client = opening;
      opening.catch(() => {
        if (client === opening) client = undefined;
      });
    }
    return client;
  }

  return {
    name,
    async publish(message: RelayMessage, signal?: AbortSignal): Promise<void> {
      try {
        const { js, headers } = await connected();
        const h = headers();
        for (const [key, value] of Object.entries(message.headers)) h.set(key, value);
        const ack = js.publish(message.destination, message.body, { msgID: message.id, headers: h, timeout: options.timeout ?? 5000 });
        if (signal) {
          await Promise.race([
            ack,
            new Promise((_, reject) => {
              if (signal.aborted) reject(signal.reason);
              signal.addEventListener('abort', () => reject(signal.reason), { once: true });
            }),
          ]);
        } else {
          await ack;
        }
      } catch (error) {
        // The client says this when nobody answered the publish: usually no stream holds the subject.
        if (/jetstream is not enabled/.test((error as Error)?.message)) {
          throw brokerError(name, `no stream captures subject "${message.destination}" (no responders; is JetStream enabled and a stream created for it?)`);
        }
        throw brokerError(name, error);
      }
    },
    async close() {
      closed = true;
      const current = client;
      client = undefined;
      const opened = await current?.catch(() => undefined);
      await opened?.nc.drain().catch(() => opened.nc.close());
    },
  };
}
