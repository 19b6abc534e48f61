// One relay or bridge process for faults/relay.ts, configured by environment variables: it runs
// until killed (SIGKILL, the point) or SIGTERM. ROLE: relay-jetstream | relay-rabbitmq |
// bridge-rabbitmq | bridge-jetstream.
import { startJetStreamBridge, startRabbitMqBridge } from '../src/bridge/index.ts';
import { jetstreamTarget, rabbitmqTarget, startRelay } from '../src/relay/index.ts';

const env = (name: string) => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const role = env('ROLE');
const connection = env('DATABASE_URL');
const logger = { info() {}, warn: (m: string) => console.error(`[${role} ${process.pid}] ${m}`), error: (m: string) => console.error(`[${role} ${process.pid}] error: ${m}`) };

let stop: () => Promise<void>;
if (role.startsWith('relay-')) {
  const target = role === 'relay-jetstream'
    ? jetstreamTarget({ servers: env('NATS'), timeout: 2000 })
    : rabbitmqTarget({ url: env('AMQP'), exchange: env('EXCHANGE') });
  const relay = await startRelay({
    connection, name: env('SUBSCRIPTION'), topics: ['faults.#'], target, destination: process.env.DESTINATION,
    ordered: true, concurrency: 50, lease: 3000, backoff: { base: 100, max: 1000 }, maxAttempts: 10_000, timeout: 5000,
    pollInterval: 500, handleSignals: false, logger,
  });
  stop = relay.stop;
} else if (role === 'bridge-rabbitmq') {
  const bridge = await startRabbitMqBridge({ connection, url: env('AMQP'), queue: env('QUEUE'), batchSize: 50, logger });
  stop = bridge.stop;
} else {
  const bridge = await startJetStreamBridge({ connection, servers: env('NATS'), stream: env('STREAM'), consumer: env('CONSUMER'), batchSize: 50, logger });
  stop = bridge.stop;
}
console.log('ready');
process.once('SIGTERM', () => void stop().then(() => process.exit(0)));
