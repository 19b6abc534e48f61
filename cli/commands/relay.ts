// crier relay: run a subscription that forwards its events to JetStream or RabbitMQ, each delivery
// done once the broker confirmed it. Runs until Ctrl-C (then stops gracefully).
import { toMilliseconds } from '../../src/duration.ts';
import { countOption, logFormatOption, logFormatSpec, listOption, stringOption, UsageError, type Command } from '../command.ts';

export const relayCommand: Command = {
  path: ['relay'],
  summary: 'forward a subscription\'s events to NATS JetStream or RabbitMQ, with publisher confirms',
  details:
    'Declares the subscription (like a worker) and publishes each delivery to the broker: to a JetStream\n' +
    'subject (the stream must exist) or to a RabbitMQ exchange (declared durable, type topic) with the\n' +
    'topic as routing key, or as --map makes it. The event uuid is the message id (Nats-Msg-Id, AMQP\n' +
    'message_id); crier-event-id, crier-topic, crier-correlation-id, crier-causation-id and the event\'s\n' +
    'own headers (traceparent, ...) go along. A delivery is done when the broker confirmed it; a refusal\n' +
    'or a broker that is down fails the attempt (retried with backoff, dead with the broker\'s error).\n' +
    'Needs the broker\'s client installed: npm install @nats-io/jetstream @nats-io/transport-node, or amqplib.',
  options: {
    'log-format': logFormatSpec,
    subscription: { type: 'string', value: 'NAME', description: 'the relay\'s subscription (required)' },
    topic: { type: 'string', value: 'PATTERN', multiple: true, description: 'topics to relay, repeatable (required)' },
    jetstream: { type: 'string', value: 'SERVERS', description: 'NATS server(s), e.g. 127.0.0.1:4222' },
    rabbitmq: { type: 'string', value: 'URL', description: 'AMQP URL, e.g. amqp://guest:guest@127.0.0.1:5672' },
    exchange: { type: 'string', value: 'NAME', description: 'RabbitMQ exchange (required with --rabbitmq)' },
    map: { type: 'string', value: 'TEMPLATE', description: 'subject or routing key for a topic, e.g. "crier.{name}" (default: the topic)' },
    mandatory: { type: 'boolean', description: 'RabbitMQ: fail a message no queue is bound for, rather than let it drop' },
    ordered: { type: 'boolean', description: 'per-key order: one event per key in flight, in publish order' },
    concurrency: { type: 'string', value: 'N', description: 'publishes awaiting a confirm at once (default 250)' },
    'max-attempts': { type: 'string', value: 'N', description: 'attempts before a delivery is dead (default 5)' },
    timeout: { type: 'string', value: 'DURATION', description: 'a publish not confirmed by then fails its attempt (default 30s)' },
  },
  examples: [
    "crier relay --subscription to-nats --topic 'order.#' --jetstream 127.0.0.1:4222 --map 'crier.{name}' --ordered",
    "crier relay --subscription to-rabbit --topic '#' --rabbitmq amqp://guest:guest@127.0.0.1:5672 --exchange events",
  ],
  async run({ values, databaseUrl, global, signal, out }) {
    const logger = logFormatOption(values);
    const subscription = stringOption(values, 'subscription');
    const topics = listOption(values, 'topic');
    if (subscription === undefined) throw new UsageError('--subscription is required');
    if (topics.length === 0) throw new UsageError('--topic is required (e.g. --topic \'order.#\')');
    const jetstream = stringOption(values, 'jetstream');
    const rabbitmq = stringOption(values, 'rabbitmq');
    if ((jetstream === undefined) === (rabbitmq === undefined)) throw new UsageError('give one of --jetstream SERVERS or --rabbitmq URL');
    const exchange = stringOption(values, 'exchange');
    if (rabbitmq !== undefined && exchange === undefined) throw new UsageError('--exchange is required with --rabbitmq');
    if (jetstream !== undefined && (exchange !== undefined || values.mandatory)) throw new UsageError('--exchange and --mandatory are for --rabbitmq');
    const timeout = stringOption(values, 'timeout');

    const { startRelay, rabbitmqTarget, jetstreamTarget } = await import('../../src/relay/index.ts');
    const target = jetstream !== undefined
      ? jetstreamTarget({ servers: jetstream })
      : rabbitmqTarget({ url: rabbitmq!, exchange: exchange!, mandatory: values.mandatory === true });
    const relay = await startRelay({
      connection: databaseUrl(),
      schema: global.schema,
      name: subscription,
      topics,
      target,
      destination: stringOption(values, 'map'),
      ordered: values.ordered === true,
      concurrency: countOption(values, 'concurrency', 250),
      maxAttempts: values['max-attempts'] === undefined ? undefined : countOption(values, 'max-attempts', 5),
      timeout: timeout === undefined ? undefined : toMilliseconds(timeout, '--timeout'),
      handleSignals: false,
      logger,
    });
    out.note(`relaying subscription ${subscription} to ${target.name} (Ctrl-C to stop)`);
    await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
    await relay.stop();
  },
};
