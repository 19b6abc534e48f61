// crier bridge: consume a RabbitMQ queue or a JetStream durable consumer and publish each message
// into crier (message id as idempotency key), acking the broker after the commit. Runs until Ctrl-C.
import { countOption, logFormatOption, logFormatSpec, listOption, stringOption, UsageError, type Command } from '../command.ts';

export const bridgeCommand: Command = {
  path: ['bridge'],
  summary: 'publish a RabbitMQ queue\'s or a JetStream consumer\'s messages into crier, each once',
  details:
    'Each message becomes an event: topic = routing key or subject (or as --topic makes it), payload = the\n' +
    'JSON body, headers = the message\'s headers, idempotency key = the message id (AMQP message_id,\n' +
    'Nats-Msg-Id; for JetStream without one, stream:sequence). The broker is acked only after the crier\n' +
    'transaction commits, so a crash redelivers and the idempotency key makes the redelivery a no-op.\n' +
    'A message that cannot be an event (not JSON, routing key not a valid topic) is rejected (RabbitMQ:\n' +
    'dead-lettered if the queue has a dead-letter exchange; JetStream: terminated). Messages without an\n' +
    'id are published without an idempotency key (a warning says so). Needs amqplib, or\n' +
    '@nats-io/jetstream and @nats-io/transport-node.',
  options: {
    'log-format': logFormatSpec,
    rabbitmq: { type: 'string', value: 'URL', description: 'AMQP URL, e.g. amqp://guest:guest@127.0.0.1:5672' },
    queue: { type: 'string', value: 'NAME', description: 'RabbitMQ queue to consume (required with --rabbitmq)' },
    bind: { type: 'string', value: 'EXCHANGE:PATTERN', multiple: true, description: 'declare the queue (durable) and bind it, repeatable' },
    jetstream: { type: 'string', value: 'SERVERS', description: 'NATS server(s), e.g. 127.0.0.1:4222' },
    stream: { type: 'string', value: 'NAME', description: 'JetStream stream (required with --jetstream)' },
    consumer: { type: 'string', value: 'NAME', description: 'durable consumer, created if missing (required with --jetstream)' },
    filter: { type: 'string', value: 'SUBJECT', multiple: true, description: 'subjects of a consumer this creates, repeatable' },
    topic: { type: 'string', value: 'TEMPLATE', description: 'crier topic for a routing key or subject, e.g. "legacy.{name}"' },
    'key-header': { type: 'string', value: 'NAME', description: 'message header whose value becomes the event key' },
    'batch-size': { type: 'string', value: 'N', description: 'messages per crier transaction (default 100)' },
  },
  examples: [
    "crier bridge --rabbitmq amqp://guest:guest@127.0.0.1:5672 --queue crier-in --bind 'orders:order.#'",
    'crier bridge --jetstream 127.0.0.1:4222 --stream ORDERS --consumer crier --topic "nats.{name}"',
  ],
  async run({ values, databaseUrl, global, signal, out }) {
    const logger = logFormatOption(values);
    const rabbitmq = stringOption(values, 'rabbitmq');
    const jetstream = stringOption(values, 'jetstream');
    if ((jetstream === undefined) === (rabbitmq === undefined)) throw new UsageError('give one of --rabbitmq URL or --jetstream SERVERS');
    const common = () => ({
      connection: databaseUrl(),
      schema: global.schema,
      topic: stringOption(values, 'topic'),
      keyHeader: stringOption(values, 'key-header'),
      batchSize: countOption(values, 'batch-size', 100),
      logger,
    });
    let bridge;
    if (rabbitmq !== undefined) {
      const queue = stringOption(values, 'queue');
      if (queue === undefined) throw new UsageError('--queue is required with --rabbitmq');
      const bindings = listOption(values, 'bind').map((b) => {
        const at = b.indexOf(':');
        if (at < 1 || at === b.length - 1) throw new UsageError(`--bind ${JSON.stringify(b)}: expected EXCHANGE:PATTERN, e.g. orders:order.#`);
        return { exchange: b.slice(0, at), pattern: b.slice(at + 1) };
      });
      const { startRabbitMqBridge } = await import('../../src/bridge/rabbitmq.ts');
      bridge = await startRabbitMqBridge({ ...common(), url: rabbitmq, queue, bindings });
    } else {
      const stream = stringOption(values, 'stream');
      const consumer = stringOption(values, 'consumer');
      if (stream === undefined || consumer === undefined) throw new UsageError('--stream and --consumer are required with --jetstream');
      const { startJetStreamBridge } = await import('../../src/bridge/jetstream.ts');
      bridge = await startJetStreamBridge({ ...common(), servers: jetstream!, stream, consumer, filterSubjects: listOption(values, 'filter') });
    }
    out.note('bridging into crier (Ctrl-C to stop)');
    await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
    await bridge.stop();
    const { published, duplicates, rejected } = bridge.stats;
    if (out.json) out.write(`${JSON.stringify(bridge.stats)}\n`);
    else out.write(`bridge stopped: ${published} published, ${duplicates} duplicates skipped, ${rejected} rejected, ${bridge.stats.echoes} relayed by this crier skipped\n`);
  },
};
