// The local brokers the relay and bridge tests run against (RabbitMQ 5672, NATS+JetStream 4222).
// A machine without them skips those tests with a visible reason; CI (CI=true) must have them, so
// there a missing broker fails instead.
import { connect as tcpConnect } from 'node:net';

export const rabbitmqUrl = process.env.CRIER_TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
export const natsServers = process.env.CRIER_TEST_NATS ?? '127.0.0.1:4222';

function answers(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host, port, timeout: 1000 });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => (socket.destroy(), resolve(false)));
  });
}

/** false when the broker answers; else the skip reason (or, in CI, an error). */
export async function brokerMissing(name: 'RabbitMQ' | 'NATS', hostPort: string): Promise<string | false> {
  const url = new URL(hostPort.includes('://') ? hostPort : `x://${hostPort.split(',')[0]}`);
  const port = Number(url.port || (name === 'RabbitMQ' ? 5672 : 4222));
  if (await answers(url.hostname, port)) return false;
  const reason = `${name} does not answer at ${url.hostname}:${port}; start it to run these tests`;
  if (process.env.CI === 'true') throw new Error(`${reason} (CI must run them)`);
  return reason;
}

export const rabbitmqMissing = await brokerMissing('RabbitMQ', rabbitmqUrl);
export const natsMissing = await brokerMissing('NATS', natsServers);
