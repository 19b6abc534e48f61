// `crier relay` and `crier bridge` as users run them (the built CLI in a child process) against the
// local brokers: they run until SIGTERM, relay/bridge meanwhile, and stop cleanly (exit 0).
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import amqp from 'amqplib';
import { createCrier } from './support/history.ts';
import { rabbitmqMissing, rabbitmqUrl } from './support/brokers.ts';
import { assertFails, cli, ensureBuilt, runCli } from './support/cli.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/database.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
let db: TestDatabase;
before(async () => {
  ensureBuilt();
  db = await createTestDatabase('relay_cli');
});
after(() => db.drop());

function start(args: string[]) {
  const child = spawn(process.execPath, [cli, ...args], { env: { ...process.env, NODE_TEST_CONTEXT: undefined, DATABASE_URL: db.url }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c) => (output += c));
  child.stderr.on('data', (c) => (output += c));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

test('importing crier/relay or crier/bridge loads no broker client: they load when a relay or bridge connects', () => {
  const hook = `export async function resolve(s, c, next) { const r = await next(s, c); const m = /node_modules\\/((@[^/]+\\/)?[^/]+)/.exec(r.url); if (m) console.log(m[1]); return r; }`;
  const register = `import { register } from 'node:module'; register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}));`;
  for (const entry of ['relay', 'bridge']) {
    const output = execFileSync(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(register)}`, '-e', `await import(${JSON.stringify(`${root}dist/src/${entry}/index.js`)})`], {
      encoding: 'utf8', env: { ...process.env, NODE_TEST_CONTEXT: undefined },
    });
    assert.deepEqual([...new Set(output.split('\n').filter(Boolean))], ['postgres'], `crier/${entry}`);
  }
});

test('usage errors name what is missing', async () => {
  assertFails(await runCli(db.url, ['relay', '--subscription', 'x', '--topic', '#']), 2, /give one of --jetstream SERVERS or --rabbitmq URL/);
  assertFails(await runCli(db.url, ['relay', '--subscription', 'x', '--topic', '#', '--rabbitmq', rabbitmqUrl]), 2, /--exchange is required with --rabbitmq/);
  assertFails(await runCli(db.url, ['bridge', '--rabbitmq', rabbitmqUrl]), 2, /--queue is required with --rabbitmq/);
  assertFails(await runCli(db.url, ['bridge', '--rabbitmq', rabbitmqUrl, '--queue', 'q', '--bind', 'nocolon']), 2, /expected EXCHANGE:PATTERN/);
});

test('crier relay and crier bridge move events out and in through RabbitMQ', { skip: rabbitmqMissing }, async () => {
  const tag = randomBytes(3).toString('hex');
  const exchange = `crier-cli-test-${tag}`;
  const connection = await amqp.connect(rabbitmqUrl);
  const channel = await connection.createChannel();
  await channel.assertExchange(exchange, 'topic', { durable: true });
  await channel.assertQueue(`${exchange}-out`, { durable: false });
  await channel.bindQueue(`${exchange}-out`, exchange, `cli${tag}.out.#`);
  const relay = start(['relay', '--subscription', `cli-${tag}`, '--topic', `cli${tag}.out.#`, '--rabbitmq', rabbitmqUrl, '--exchange', exchange]);
  const bridge = start(['bridge', '--rabbitmq', rabbitmqUrl, '--queue', `${exchange}-in`, '--bind', `${exchange}:cli${tag}.in.#`]);
  try {
    await eventually(() => /relaying subscription/.test(relay.output()) && /bridging into crier/.test(bridge.output()), 20_000, 'both started');
    const event = await createCrier().publish(db.sql, `cli${tag}.out.sent`, { n: 1 });
    const message = (await eventually(() => channel.get(`${exchange}-out`, { noAck: true }), 15_000, 'the relayed message')) as amqp.GetMessage;
    assert.equal(message.properties.messageId, event.uuid);
    channel.publish(exchange, `cli${tag}.in.received`, Buffer.from('{"n":2}'), { messageId: `in-${tag}` });
    const rows = await eventually(async () => {
      const found = await db.sql`SELECT payload FROM crier.events WHERE topic = ${`cli${tag}.in.received`}`;
      return found.length > 0 ? found : undefined;
    }, 15_000, 'the bridged event');
    assert.deepEqual(rows![0]!.payload, { n: 2 });
  } finally {
    relay.child.kill('SIGTERM');
    bridge.child.kill('SIGTERM');
    assert.equal(await relay.exited, 0, relay.output());
    assert.equal(await bridge.exited, 0, bridge.output());
    await channel.deleteQueue(`${exchange}-out`).catch(() => {});
    await channel.deleteQueue(`${exchange}-in`).catch(() => {});
    await channel.deleteExchange(exchange).catch(() => {});
    await connection.close();
  }
  assert.match(bridge.output(), /bridge stopped: 1 published, 0 duplicates skipped, 0 rejected/);
});
