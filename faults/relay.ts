// Faults across the relay and the bridge: `npm run test:faults:relay [-- --only name,name] [-- --window 8]`.
// Each scenario runs a relay (crier → broker) or a bridge (broker → crier) as a child process on a
// fresh database of the Postgres at DATABASE_URL (default: the local one), produces events for a
// window while injecting one kind of fault, waits for everything to settle and compares both sides:
//   relay:  every event committed in crier must be at the broker (lost = 0); duplicates are
//           counted: JetStream must have none (Nats-Msg-Id), RabbitMQ may (at-least-once).
//   bridge: every message the broker confirmed to its producer must be an event (lost = 0), and
//           once only (duplicates = 0: the message id is the idempotency key).
// Faults: broker restart (rabbitmqctl stop_app/start_app; NATS killed and started again with its
// own command line), SIGKILL of the relay/bridge mid-batch (then started again), Postgres
// connections of the relay/bridge terminated (pg_terminate_backend). The brokers are always
// restored, also on failure or Ctrl-C. Needs root (or the rabbitmq user) for rabbitmqctl and NATS.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { parseArgs } from 'node:util';
import amqp from 'amqplib';
import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect as natsConnect, type NatsConnection } from '@nats-io/transport-node';
import postgres from 'postgres';
import { createCrier, migrate } from '../src/index.ts';

const { values } = parseArgs({ options: { only: { type: 'string' }, window: { type: 'string', default: '8' }, verbose: { type: 'boolean', default: false } } });
const windowMs = Number(values.window) * 1000;
const serverUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const amqpUrl = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const natsServers = process.env.NATS_URL ?? '127.0.0.1:4222';
const log = (line: string) => console.error(line);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** A broker that stopped answering must not stall the producer: what is not confirmed in time does not count. */
function withTimeout<T>(ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('no confirm in time')), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

type Side = 'relay-jetstream' | 'relay-rabbitmq' | 'bridge-rabbitmq' | 'bridge-jetstream';
type Fault = 'broker-restart' | 'sigkill' | 'pg-kill';
interface Scenario { side: Side; fault: Fault }
const all: Scenario[] = [
  { side: 'relay-jetstream', fault: 'broker-restart' },
  { side: 'relay-jetstream', fault: 'sigkill' },
  { side: 'relay-jetstream', fault: 'pg-kill' },
  { side: 'relay-rabbitmq', fault: 'broker-restart' },
  { side: 'relay-rabbitmq', fault: 'sigkill' },
  { side: 'relay-rabbitmq', fault: 'pg-kill' },
  { side: 'bridge-rabbitmq', fault: 'broker-restart' },
  { side: 'bridge-rabbitmq', fault: 'sigkill' },
  { side: 'bridge-rabbitmq', fault: 'pg-kill' },
  { side: 'bridge-jetstream', fault: 'broker-restart' },
  { side: 'bridge-jetstream', fault: 'sigkill' },
];
const nameOf = (s: Scenario) => `${s.side}/${s.fault}`;
const selected = values.only ? all.filter((s) => values.only!.split(',').includes(nameOf(s))) : all;
if (selected.length === 0) {
  console.error(`no scenario named ${values.only}; known: ${all.map(nameOf).join(', ')}`);
  process.exit(2);
}

// ---- the brokers: restart, and always restore ------------------------------------------------
function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: '127.0.0.1', port, timeout: 1000 });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => (socket.destroy(), resolve(false)));
  });
}

/** How this machine runs NATS: the command line of the running server, read before we stop it. */
function natsCommand(): string[] {
  const pid = execFileSync('pgrep', ['-o', '-x', 'nats-server'], { encoding: 'utf8' }).trim();
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
}
let natsCommandLine: string[] | undefined;

async function restartBroker(side: Side, downMs: number): Promise<void> {
  if (side.endsWith('rabbitmq')) {
    execFileSync('rabbitmqctl', ['stop_app'], { stdio: 'ignore' });
    await sleep(downMs);
    execFileSync('rabbitmqctl', ['start_app'], { stdio: 'ignore' });
  } else {
    natsCommandLine ??= natsCommand();
    const pid = execFileSync('pgrep', ['-o', '-x', 'nats-server'], { encoding: 'utf8' }).trim();
    process.kill(Number(pid), 'SIGTERM');
    while (await answers(4222)) await sleep(50);
    await sleep(downMs);
    startNats();
  }
  while (!(await answers(side.endsWith('rabbitmq') ? 5672 : 4222))) await sleep(100);
}

function startNats(): void {
  const [command, ...args] = natsCommandLine!;
  spawn(command!, args, { detached: true, stdio: 'ignore' }).unref();
}

/** Puts both brokers back as they were; safe to call at any time, twice. */
function restoreBrokersSync(): void {
  try {
    execFileSync('rabbitmqctl', ['start_app'], { stdio: 'ignore', timeout: 60_000 });
  } catch (error) {
    console.error(`could not start RabbitMQ's app: ${(error as Error).message}`);
  }
  if (natsCommandLine) {
    try {
      execFileSync('pgrep', ['-x', 'nats-server'], { stdio: 'ignore' });
    } catch {
      startNats();
    }
  }
}
process.on('SIGINT', () => (killChildren(), restoreBrokersSync(), process.exit(130)));
process.on('SIGTERM', () => (killChildren(), restoreBrokersSync(), process.exit(143)));

// ---- the relay/bridge process, restarted when killed --------------------------------------------
const live = new Set<ChildProcess>();
function killChildren(): void {
  for (const child of live) child.kill('SIGKILL');
}

class Supervised {
  child: ChildProcess | undefined;
  crashes = 0;
  stopping = false;
  constructor(private readonly env: Record<string, string>) {}

  async start(): Promise<void> {
    const child = spawn(process.execPath, ['--import', 'tsx', new URL('./relay-process.ts', import.meta.url).pathname], {
      env: { ...process.env, ...this.env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    live.add(child);
    let stderr = '';
    child.stderr!.on('data', (chunk) => {
      stderr += chunk;
      if (values.verbose) process.stderr.write(chunk);
    });
    child.once('exit', (code, signal) => {
      live.delete(child);
      if (signal === 'SIGKILL' || this.stopping || this.child !== child) return;
      this.crashes++;
      log(`  ${this.env.ROLE} died by itself (${code ?? signal}): ${stderr.slice(-400)}`);
      void this.start();
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (chunk) => String(chunk).includes('ready') && resolve());
      child.once('exit', () => reject(new Error(`${this.env.ROLE} exited before it was ready: ${stderr.slice(-600)}`)));
    });
  }

  async kill(): Promise<void> {
    const child = this.child!;
    this.child = undefined;
    child.kill('SIGKILL');
    await new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(null) : child.once('exit', resolve)));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    child.kill('SIGTERM');
    await Promise.race([new Promise((resolve) => child.once('exit', resolve)), sleep(10_000).then(() => child.kill('SIGKILL'))]);
  }
}

// ---- one scenario ------------------------------------------------------------------------------
interface Row { name: string; produced: number; after: number; arrived: number; faults: number; lost: number; duplicates: number; crashes: number; ok: boolean; note: string }

async function run(scenario: Scenario): Promise<Row> {
  const tag = randomBytes(3).toString('hex');
  const dbName = `crier_faults_relay_${tag}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE "${dbName}"`);
  const dbUrl = new URL(serverUrl);
  dbUrl.pathname = `/${dbName}`;
  await migrate({ connection: dbUrl.toString() });
  const childUrl = new URL(dbUrl);
  childUrl.searchParams.set('application_name', 'crier-fault-child');
  const sql = postgres(dbUrl.toString(), { max: 4, onnotice: () => {} });
  const crier = createCrier();
  const relay = scenario.side.startsWith('relay');
  const jet = scenario.side.endsWith('jetstream');

  const nc: NatsConnection | undefined = jet ? await natsConnect({ servers: natsServers, maxReconnectAttempts: -1, reconnectTimeWait: 250 }) : undefined;
  const jsm = nc ? await jetstreamManager(nc) : undefined;
  const stream = `FAULTS_${tag}`;
  const subject = `faults${tag}`;
  const exchange = `crier-faults-${tag}`;
  const queue = `crier-faults-${tag}`;
  let amqpConnection: amqp.ChannelModel | undefined;
  const amqpChannel = async () => {
    amqpConnection = await amqp.connect(amqpUrl, { timeout: 3000 });
    amqpConnection.on('error', () => {});
    const channel = await amqpConnection.createConfirmChannel();
    channel.on('error', () => {});
    return channel;
  };
  if (jsm) await jsm.streams.add({ name: stream, subjects: [`${subject}.>`], duplicate_window: 5 * 60 * 1_000_000_000 });
  if (!jet) {
    const channel = await amqpChannel();
    await channel.assertExchange(exchange, 'topic', { durable: true });
    await channel.assertQueue(queue, { durable: true });
    await channel.bindQueue(queue, exchange, '#');
    await amqpConnection!.close();
  }

  const env: Record<string, string> = {
    ROLE: scenario.side, DATABASE_URL: childUrl.toString(), NATS: natsServers, AMQP: amqpUrl, EXCHANGE: exchange, QUEUE: queue,
    STREAM: stream, CONSUMER: 'crier', SUBSCRIPTION: 'to-broker', DESTINATION: `${subject}.{name}`,
  };
  const proc = new Supervised(env);
  await proc.start();

  // Producers: into crier for the relay (truth: the events table), into the broker for the bridge
  // (truth: what the broker confirmed).
  const confirmed = new Set<string>();
  let producing = true;
  let seq = 0;
  const producer = (async () => {
    const js = nc ? jetstream(nc) : undefined;
    let channel: amqp.ConfirmChannel | undefined;
    while (producing) {
      const batch = Array.from({ length: 10 }, () => ({ id: randomUUID(), seq: seq++ }));
      try {
        if (relay) {
          await crier.publishMany(sql, batch.map((m) => ({ topic: 'faults.relayed', key: `k${m.seq % 8}`, payload: m })));
        } else if (js) {
          await Promise.all(batch.map(async (m) => {
            await js.publish(`${subject}.faults.bridged`, JSON.stringify(m), { msgID: m.id, timeout: 2000 });
            confirmed.add(m.id);
          }));
        } else {
          // A broker that is starting can take the connection and never open the channel.
          channel ??= await withTimeout(3000, amqpChannel());
          const ch = channel;
          await withTimeout(3000, Promise.all(batch.map((m) => new Promise<void>((resolve, reject) => {
            try {
              ch.publish(exchange, 'faults.bridged', Buffer.from(JSON.stringify(m)), { messageId: m.id, persistent: true }, (error) => {
                if (error) return reject(error);
                confirmed.add(m.id);
                resolve();
              });
            } catch (error) {
              reject(error);
            }
          }))));
        }
      } catch {
        // Broker or database away: what was not confirmed does not count; try again shortly.
        if (!relay && !js) {
          const stale = amqpConnection;
          amqpConnection = undefined;
          await withTimeout(1000, stale?.close() ?? Promise.resolve()).catch(() => {});
        }
        channel = undefined;
        await sleep(200);
      }
      await sleep(25);
    }
  })();

  // The faults, at a quarter and a half of the window; producers go on for at least a quarter of
  // it after the last fault has healed (a broker restart takes seconds).
  let faults = 0;
  const heldAtKill: number[] = [];
  const started = Date.now();
  for (const at of [windowMs / 4, windowMs / 2]) {
    await sleep(Math.max(0, started + at - Date.now()));
    if (scenario.fault === 'sigkill') {
      if (relay) {
        // Mid-batch: a burst of 300 events, then the kill as soon as the relay holds some of them
        // (claimed, publishing); how many it held is reported.
        const burst = Array.from({ length: 300 }, () => ({ id: randomUUID(), seq: seq++ }));
        await crier.publishMany(sql, burst.map((m) => ({ topic: 'faults.relayed', key: `k${m.seq % 8}`, payload: m })));
        let held = 0;
        for (const until = Date.now() + 3000; held === 0 && Date.now() < until; ) {
          held = (await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM crier.deliveries WHERE state = 'running'`)[0]!.n;
        }
        heldAtKill.push(held);
      }
      await proc.kill();
      faults++;
      await proc.start();
    } else if (scenario.fault === 'broker-restart') {
      await restartBroker(scenario.side, 2000);
      faults++;
    } else {
      for (let i = 0; i < 3; i++) {
        const killed = await sql`SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = ${dbName} AND application_name = 'crier-fault-child'`;
        faults += killed[0]!.n;
        await sleep(300);
      }
    }
  }
  const seqAfterFaults = seq;
  const confirmedBeforeEnd = confirmed.size;
  // Produce on until the window is over, for at least a quarter of it after the last fault, and
  // until 50 messages went through after it (a restarted JetStream takes a while to take publishes
  // again), for at most 30 s.
  const healed = Date.now();
  const progress = () => (relay ? seq - seqAfterFaults : confirmed.size - confirmedBeforeEnd);
  while (Date.now() < healed + 30_000 && (Date.now() < Math.max(started + windowMs, healed + windowMs / 4) || progress() < 50)) await sleep(100);
  const producingAgainMs = Date.now() - healed;
  producing = false;
  await producer;

  // Settle, then compare.
  const deadline = Date.now() + 60_000;
  let produced = 0;
  let after = 0;
  let arrived = 0;
  let lost = 0;
  let duplicates = 0;
  let note = '';
  if (relay) {
    const events = await sql<{ uuid: string; seq: number }[]>`SELECT uuid::text AS uuid, (payload->>'seq')::int AS seq FROM crier.events`;
    const committed = new Set(events.map((r) => r.uuid));
    produced = committed.size;
    after = events.filter((e) => e.seq >= seqAfterFaults).length;
    while (Date.now() < deadline) {
      const n = (await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM crier.deliveries WHERE state <> 'done'`)[0]!.n;
      if (n === 0) break;
      await sleep(250);
    }
    const ids = jet ? await streamIds(nc!, jsm!, stream) : await queueIds(amqpUrl, queue);
    arrived = ids.length;
    const distinct = new Set(ids);
    lost = [...committed].filter((id) => !distinct.has(id)).length;
    duplicates = ids.length - distinct.size;
    const n = (await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM crier.deliveries WHERE state <> 'done'`)[0]!.n;
    if (n > 0) note = `${n} deliveries not done`;
  } else {
    produced = confirmed.size;
    after = confirmed.size - confirmedBeforeEnd;
    let rows: { id: string }[] = [];
    while (Date.now() < deadline) {
      rows = await sql<{ id: string }[]>`SELECT payload->>'id' AS id FROM crier.events`;
      const have = new Set(rows.map((r) => r.id));
      if ([...confirmed].every((id) => have.has(id))) break;
      await sleep(250);
    }
    await sleep(1000); // late redeliveries, if any, would show as duplicates
    rows = await sql<{ id: string }[]>`SELECT payload->>'id' AS id FROM crier.events`;
    const have = new Set(rows.map((r) => r.id));
    arrived = rows.length;
    lost = [...confirmed].filter((id) => !have.has(id)).length;
    duplicates = rows.length - have.size;
  }
  await proc.stop();

  // Clean up the broker and the database.
  if (jsm) await jsm.streams.delete(stream).catch(() => {});
  await nc?.close();
  if (!jet) {
    const channel = await amqpChannel();
    await channel.deleteQueue(queue).catch(() => {});
    await channel.deleteExchange(exchange).catch(() => {});
    await amqpConnection!.close().catch(() => {});
  }
  await sql.end({ timeout: 1 });
  await admin.unsafe(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
  await admin.end();

  // Exactly once where the design promises it: JetStream (its duplicate window) and the bridge.
  const duplicatesAllowed = scenario.side === 'relay-rabbitmq';
  // Events produced after the last fault must have gone through too: the relay/bridge recovered.
  const ok = lost === 0 && after > 0 && (duplicatesAllowed || duplicates === 0) && proc.crashes === 0;
  if (heldAtKill.length > 0) note = `${note ? `${note}; ` : ''}deliveries held by the relay when killed: ${heldAtKill.join(', ')}`;
  if (producingAgainMs > windowMs / 2) note = `${note ? `${note}; ` : ''}producers took ${(producingAgainMs / 1000).toFixed(1)} s to get 50 through after the last fault`;
  return { name: nameOf(scenario), produced, after, arrived, faults, lost, duplicates, crashes: proc.crashes, ok, note };
}

/** Nats-Msg-Id of every message in the stream. */
async function streamIds(nc: NatsConnection, jsm: Awaited<ReturnType<typeof jetstreamManager>>, stream: string): Promise<string[]> {
  await jsm.consumers.add(stream, { durable_name: 'checker', ack_policy: AckPolicy.None });
  const consumer = await jetstream(nc).consumers.get(stream, 'checker');
  const total = (await jsm.streams.info(stream)).state.messages;
  const ids: string[] = [];
  while (ids.length < total) {
    const batch = await consumer.fetch({ max_messages: Math.min(1000, total - ids.length), expires: 5000 });
    let got = 0;
    for await (const m of batch) {
      ids.push(m.headers?.get('Nats-Msg-Id') ?? '');
      got++;
    }
    if (got === 0) break;
  }
  return ids;
}

/** message_id of every message in the queue (consumed: the queue is deleted afterwards). */
async function queueIds(url: string, queue: string): Promise<string[]> {
  const connection = await amqp.connect(url);
  const channel = await connection.createChannel();
  const ids: string[] = [];
  for (;;) {
    const message = await channel.get(queue, { noAck: true });
    if (message === false) break;
    ids.push(String(message.properties.messageId));
  }
  await connection.close();
  return ids;
}

// ---- main --------------------------------------------------------------------------------------
if (!(await answers(5672)) || !(await answers(4222))) {
  console.error('RabbitMQ (5672) and NATS (4222) must both answer on 127.0.0.1 to run these faults');
  process.exit(2);
}
natsCommandLine = natsCommand();
const rows: Row[] = [];
const began = Date.now();
try {
  for (const scenario of selected) {
    log(`${nameOf(scenario)} ...`);
    const row = await run(scenario);
    rows.push(row);
    log(`  ${row.ok ? 'ok' : 'FAILED'}: produced ${row.produced} (${row.after} after the faults), arrived ${row.arrived}, lost ${row.lost}, duplicates ${row.duplicates}${row.note ? ` (${row.note})` : ''}`);
  }
} finally {
  killChildren();
  restoreBrokersSync();
}

const header = ['scenario', 'committed/confirmed', 'after faults', 'arrived', 'faults', 'lost', 'duplicates', 'crashes', 'result'];
const table = rows.map((r) => [r.name, String(r.produced), String(r.after), String(r.arrived), String(r.faults), String(r.lost), String(r.duplicates), String(r.crashes), r.ok ? 'ok' : 'FAIL']);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
console.log(`\n${line(header)}\n|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
for (const row of table) console.log(line(row));
for (const r of rows) if (r.note) console.log(`${r.name}: ${r.note}`);
console.log(`\n${rows.length} scenarios in ${((Date.now() - began) / 1000).toFixed(0)} s. relay: committed = events in crier, arrived = messages at the broker; bridge: confirmed = messages the broker confirmed to the producer, arrived = events in crier; after faults: of them, produced after the last fault (must be > 0: the relay/bridge recovered). lost must be 0 everywhere; duplicates must be 0 except relay-rabbitmq (at-least-once: a relay killed between the broker's confirm and crier's ack publishes again; the consumer sees the same message_id twice). faults: kills, restarts, or backends terminated. crashes: relay/bridge processes that died by themselves (must be 0).`);
process.exit(rows.every((r) => r.ok) ? 0 : 1);
