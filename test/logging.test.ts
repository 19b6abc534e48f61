// Structured logging (issue 15 item 1): a handler failure that retries, a dead letter and a slow
// handler each give one record with the attempt's fields; a plain {info,warn,error}(string) logger
// still works (one string with key=value fields); the default logger writes key=value or JSON lines.
// Real Postgres, a real worker.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { createCrier } from './support/history.ts';
import { createConsoleLogger } from '../src/logger.ts';
import { runCli } from './support/cli.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/database.ts';

const crier = createCrier();
let db: TestDatabase;
before(async () => {
  db = await createTestDatabase('logging_loop');
});
after(async () => {
  await db.drop();
});

type LogRecord = { level: string; fields: Record<string, unknown>; message: string };

/** A pino-shaped logger that keeps its records (methods take (fields, message)). */
function collectingLogger() {
  const records: LogRecord[] = [];
  const at = (level: string) => (fields: object | string, message?: string) =>
    void records.push(typeof fields === 'string' ? { level, fields: {}, message: fields } : { level, fields: { ...fields }, message: message ?? '' });
  return { records, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), isLevelEnabled: () => true };
}

test('a retry and a dead letter each log one record with the attempt\'s fields; handled is a debug record', async () => {
  const logger = collectingLogger();
  const worker = crier.worker({
    connection: db.url,
    handleSignals: false,
    logger,
    subscriptions: [
      { name: 'log-fail', topics: ['log.fail'], maxAttempts: 2, retry: ['50ms'], handler: async () => { throw new Error('boom'); } },
      { name: 'log-ok', topics: ['log.ok'], handler: () => {} },
    ],
  });
  await worker.start();
  try {
    const bad = await crier.publish(db.sql, 'log.fail', {});
    const good = await crier.publish(db.sql, 'log.ok', {});
    await eventually(() => logger.records.some((r) => r.level === 'error' && r.fields.subscription === 'log-fail'), 15_000, 'the dead-letter record');
    await eventually(() => logger.records.some((r) => r.level === 'debug' && r.fields.subscription === 'log-ok'), 15_000, 'the handled record');
    const about = (subscription: string) => logger.records.filter((r) => r.fields.subscription === subscription && 'attempt' in r.fields);

    const [retry, dead, ...more] = about('log-fail');
    assert.equal(more.length, 0, 'one record per failure');
    assert.equal(retry!.level, 'warn');
    assert.equal(retry!.message, 'handler failed; retrying');
    assert.deepEqual(
      { ...retry!.fields, deliveryId: undefined, durationMs: undefined, retryAt: undefined },
      { subscription: 'log-fail', deliveryId: undefined, eventId: bad.id, topic: 'log.fail', attempt: 1, maxAttempts: 2, durationMs: undefined, error: 'boom', retryAt: undefined },
    );
    assert.match(String(retry!.fields.deliveryId), /^\d+$/);
    assert.equal(typeof retry!.fields.durationMs, 'number');
    assert.ok(retry!.fields.retryAt instanceof Date);
    assert.equal(dead!.level, 'error');
    assert.equal(dead!.message, 'handler failed; the delivery is dead');
    assert.deepEqual([dead!.fields.attempt, dead!.fields.error, dead!.fields.eventId, dead!.fields.deliveryId], [2, 'boom', bad.id, retry!.fields.deliveryId]);

    const [handled] = about('log-ok');
    assert.equal(handled!.level, 'debug');
    assert.equal(handled!.fields.eventId, good.id);
    assert.equal(typeof handled!.fields.durationMs, 'number');
  } finally {
    await worker.stop();
  }
});

test('a plain {info,warn,error}(string) logger gets one string per record, fields as key=value', async () => {
  const warnings: string[] = [];
  const errors: string[] = [];
  const worker = crier.worker({
    connection: db.url,
    handleSignals: false,
    logger: { info: (m: string) => void m, warn: (m: string) => void warnings.push(m), error: (m: string) => void errors.push(m) },
    subscriptions: [{ name: 'log-plain', topics: ['logp.#'], maxAttempts: 2, retry: ['50ms'], handler: async () => { throw new Error('boom again'); } }],
  });
  await worker.start();
  try {
    const event = await crier.publish(db.sql, 'logp.x', {});
    await eventually(() => errors.length > 0, 15_000, 'the dead-letter line');
    const retry = warnings.find((w) => w.startsWith('handler failed; retrying'));
    assert.ok(retry, warnings.join('\n'));
    assert.match(retry!, new RegExp(`^handler failed; retrying subscription=log-plain deliveryId=\\d+ eventId=${event.id} topic=logp.x attempt=1 maxAttempts=2 durationMs=\\d+ error="boom again" retryAt=\\S+Z$`));
    assert.match(errors[0]!, /^handler failed; the delivery is dead subscription=log-plain .*attempt=2 .*error="boom again"/);
  } finally {
    await worker.stop();
  }
});

test('a pino logger is passed as is: its JSON records carry the fields', async () => {
  const records: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void records.push(JSON.parse(line)) });
  const worker = crier.worker({
    connection: db.url,
    handleSignals: false,
    logger,
    subscriptions: [{ name: 'log-pino', topics: ['logpino.#'], maxAttempts: 2, retry: ['50ms'], handler: async () => { throw new Error('pino boom'); } }],
  });
  await worker.start();
  try {
    const event = await crier.publish(db.sql, 'logpino.x', {});
    await eventually(() => records.some((r) => r.msg === 'handler failed; the delivery is dead'), 15_000, 'the dead-letter record');
    const retry = records.find((r) => r.msg === 'handler failed; retrying')!;
    assert.equal(retry.level, 40, 'pino warn');
    assert.deepEqual([retry.subscription, retry.eventId, retry.topic, retry.attempt, retry.error], ['log-pino', event.id, 'logpino.x', 1, 'pino boom']);
    assert.ok(!Number.isNaN(Date.parse(String(retry.retryAt))));
    const started = records.find((r) => typeof r.msg === 'string' && r.msg.includes('started'))!;
    assert.equal(started.level, 30, 'a message with fields: pino info');
  } finally {
    await worker.stop();
  }
});

test('a handler still running at half its timeout is logged once as slow', async () => {
  const logger = collectingLogger();
  const slow = () => logger.records.filter((r) => r.message.startsWith('handler slow'));
  const worker = crier.worker({
    connection: db.url,
    handleSignals: false,
    logger,
    subscriptions: [
      {
        name: 'log-slow',
        topics: ['logs.#'],
        timeout: '3s',
        // Finishes once the slow record is there: no wall-clock bound to break under load.
        handler: () => eventually(() => slow().length > 0, 2500, 'the slow record'),
      },
    ],
  });
  await worker.start();
  try {
    const event = await crier.publish(db.sql, 'logs.x', {});
    await eventually(() => logger.records.some((r) => r.level === 'debug' && r.fields.subscription === 'log-slow'), 15_000, 'handled');
    assert.equal(slow().length, 1);
    const [record] = slow();
    assert.equal(record!.level, 'warn');
    assert.equal(record!.fields.eventId, event.id);
    assert.equal(record!.fields.timeoutMs, 3000);
    assert.ok(Number(record!.fields.runningMs) >= 1500);
  } finally {
    await worker.stop();
  }
});

test('the default logger: key=value or JSON lines, levels, errors and dates as text', () => {
  const lines: string[] = [];
  const text = createConsoleLogger({ format: 'text', write: (l) => void lines.push(l) });
  text.warn({ subscription: 'orders', attempt: 2, error: new Error('no "stock" left'), retryAt: new Date('2026-12-07T16:00:00Z') }, 'handler failed; retrying');
  text.info('plain message');
  text.debug!({ a: 1 }, 'dropped at the default level');
  assert.equal(lines.length, 2);
  assert.match(lines[0]!, /^time=\S+ level=warn msg="handler failed; retrying" subscription=orders attempt=2 error="no \\"stock\\" left" retryAt=2026-12-07T16:00:00.000Z$/);
  assert.match(lines[1]!, /^time=\S+ level=info msg="plain message"$/);

  const json: string[] = [];
  const logger = createConsoleLogger({ format: 'json', level: 'debug', write: (l) => void json.push(l) });
  logger.debug!({ deliveryId: '7', durationMs: 3 }, 'handler done');
  const record = JSON.parse(json[0]!);
  assert.deepEqual({ ...record, time: undefined }, { time: undefined, level: 'debug', msg: 'handler done', deliveryId: '7', durationMs: 3 });
  assert.ok(!Number.isNaN(Date.parse(record.time)));
});

test('--log-format on relay and bridge: text or json, anything else a usage error; --help tells', async () => {
  for (const command of ['relay', 'bridge']) {
    const bad = await runCli(db.url, [command, '--log-format', 'yaml']);
    assert.equal(bad.code, 2, `${command}: ${bad.stderr}`);
    assert.match(bad.stderr, /--log-format must be text or json, not "yaml"/);
    const help = await runCli(db.url, [command, '--help']);
    assert.match(help.stdout + help.stderr, /--log-format text\|json/);
  }
});
