// The relay: a crier subscription whose handler forwards each delivery to a broker and returns
// only once the broker confirmed it. Everything else is the worker's: a failed publish is a failed
// attempt (retried with the subscription's backoff, dead-lettered with the broker's error), an
// ordered subscription hands the relay one delivery per key at a time, and the subscription's
// batchSize bounds what this process holds while the broker is slow or down.
import { CrierError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Duration } from '../duration.ts';
import type { Connection } from '../connection.ts';
import type { SubscriptionSpec } from '../subscriptions.ts';
import { Worker, type SubscriptionDefinition } from '../worker/worker.ts';
import { toRelayMessage, type NameMapping, type RelayTarget } from './target.ts';

export interface RelaySubscriptionOptions extends SubscriptionSpec {
  target: RelayTarget;
  /** Topic → JetStream subject or AMQP routing key: a template ("crier.{name}") or a function (default: the topic). */
  destination?: NameMapping;
  /** Publishes awaiting their confirm at once (default 250: fewer left the relay well below a direct client in the bench probe). */
  concurrency?: number;
  /** Deliveries claimed at once, in flight or waiting their turn (default 2 × concurrency). */
  batchSize?: number;
  /** A publish not confirmed after this long fails its attempt (default 30s). */
  timeout?: Duration;
}

/** The relay as a subscription definition, to run in any worker beside other subscriptions. */
export function relaySubscription(options: RelaySubscriptionOptions): SubscriptionDefinition {
  const { target, destination, concurrency = 250, batchSize, timeout = 30_000, ...spec } = options;
  if (typeof target?.publish !== 'function') {
    throw new CrierError('CRIER_INVALID_OPTION', `relay "${spec.name}": target must be a RelayTarget (rabbitmqTarget, jetstreamTarget, ...)`);
  }
  return {
    ...spec,
    concurrency,
    batchSize: batchSize ?? 2 * concurrency,
    timeout,
    handler: (event, ctx) => target.publish(toRelayMessage(event, destination), ctx.signal),
  };
}

export interface RelayOptions extends RelaySubscriptionOptions {
  connection: Connection;
  schema?: string;
  pollInterval?: Duration;
  /** Stop gracefully on SIGINT/SIGTERM (default true). */
  handleSignals?: boolean;
  logger?: Logger | false;
}

export interface Relay {
  readonly worker: Worker;
  /** Stops claiming, waits for the confirms in flight, hands back the rest, closes the broker connection. */
  stop(): Promise<void>;
}

/** Starts a worker running one relay subscription. */
export async function startRelay(options: RelayOptions): Promise<Relay> {
  const { connection, schema, pollInterval, handleSignals, logger, ...relay } = options;
  const worker = new Worker({ connection, schema, pollInterval, handleSignals, logger, subscriptions: [relaySubscription(relay)] });
  try {
    await worker.start();
  } catch (error) {
    await relay.target.close();
    throw error;
  }
  let stopped: Promise<void> | undefined;
  const stop = async () => {
    await worker.stop();
    await relay.target.close();
  };
  return { worker, stop: () => (stopped ??= stop()) };
}
