// crier/prometheus and `crier metrics`, scraped over real HTTP against a real database: the gauges
// follow the deliveries as work flows (published, handled, dead, stuck), a reading that cannot finish
// in time turns into crier_database_up 0 instead of a hung scrape, and the CLI exporter serves the
// same gauges from a child process and stops on SIGTERM.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import postgres from 'postgres';
import { UnrecoverableError } from '../src/index.ts';
import { createCrier } from './support/history.ts';
import { prometheusMetrics, type MetricsServer, type PrometheusMetrics } from '../src/integrations/prometheus/index.ts';
import { cli, ensureBuilt, runCli } from './support/cli.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/database.ts';

const crier = createCrier();
let db: TestDatabase;

before(async () => {
  db = await createTestDatabase('prometheus');
  await db.sql`SELECT crier.create_subscription('billing', ARRAY['order.#'], p_max_attempts => 2)`;
  await db.sql`SELECT crier.create_subscription('audit', ARRAY['#'])`;
});
after(async () => {
  await db.drop();
});

/** The samples of a Prometheus text page: 'name{label="value",...}' -> value. */
function samples(page: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const line of page.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    found.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return found;
}

async function scrape(url: string): Promise<Map<string, number>> {
  const response = await fetch(url);
  assert.equal(response.status, 200, await response.clone().text());
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
  return samples(await response.text());
}

async function publish(topic: string, count: number, payload: object = {}) {
  await db.sql.begin((tx) => crier.publishMany(tx, Array.from({ length: count }, () => ({ topic, payload }))));
}

describe('crier/prometheus', () => {
  let metrics: PrometheusMetrics;
  let server: MetricsServer;
  let close: () => Promise<void>;

  before(async () => {
    metrics = prometheusMetrics();
    // settle 0: the test's transactions have committed before each scrape starts.
    const gauges = metrics.collectDatabaseGauges(db.url, { interval: 0, settle: 0, logger: { info() {}, warn() {}, error() {} } });
    server = await metrics.serve({ port: 0 });
    close = async () => {
      await server.close();
      await gauges.close();
    };
  });
  after(() => close());

  test('the gauges follow the deliveries: backlog, published, then handled and dead', async () => {
    const baseline = await scrape(server.url); // the published counter counts from here
    assert.equal(baseline.get('crier_database_up'), 1);
    assert.equal(baseline.get('crier_backlog{subscription="billing"}'), 0);
    assert.equal(baseline.get('crier_oldest_due_age_seconds{subscription="billing"}'), 0);

    await publish('order.created', 4, { ok: true });
    await publish('order.cancelled', 1, { ok: false });
    await publish('order.updated', 1, { ok: true, flaky: true });
    await publish('user.signed_up', 2);
    const queued = await scrape(server.url);
    assert.equal(queued.get('crier_backlog{subscription="billing"}'), 6);
    assert.equal(queued.get('crier_backlog{subscription="audit"}'), 8);
    assert.ok(queued.get('crier_oldest_due_age_seconds{subscription="billing"}')! > 0);
    assert.equal(queued.get('crier_published_total{topic="order.created"}'), 4);
    assert.equal(queued.get('crier_published_total{topic="order.cancelled"}'), 1);
    assert.equal(queued.get('crier_published_total{topic="user.signed_up"}'), 2);
    assert.equal(queued.get('crier_dead_letters{subscription="billing"}'), 0);

    const worker = crier.worker({
      connection: db.url,
      handleSignals: false,
      logger: false,
      pollInterval: 200,
      subscriptions: [{
        name: 'billing',
        topics: ['order.#'],
        maxAttempts: 2,
        backoff: { base: 10, max: 20 },
        handler: async (event, ctx) => {
          const payload = event.payload as { ok: boolean; flaky?: boolean };
          if (!payload.ok) throw new UnrecoverableError('cannot cancel');
          if (payload.flaky && ctx.attempt === 1) throw new Error('not yet');
        },
      }],
    });
    const stopObserving = metrics.observeWorker(worker);
    await worker.start();
    try {
      const drained = await eventually(async () => {
        const page = await scrape(server.url);
        return page.get('crier_backlog{subscription="billing"}') === 0 && page.get('crier_running{subscription="billing"}') === 0 ? page : undefined;
      }, 20_000, 'billing drained') as Map<string, number>;
      assert.equal(drained.get('crier_dead_letters{subscription="billing"}'), 1);
      assert.equal(drained.get('crier_backlog{subscription="audit"}'), 8, 'no worker for audit: its backlog stays');
      assert.equal(drained.get('crier_published_total{topic="order.created"}'), 4, 'counted once, not again on later scrapes');

      // The worker's own counters, from its events: by subscription and topic.
      const page = await eventually(async () => {
        const p = await scrape(server.url);
        return p.get('crier_handled_total{subscription="billing",topic="order.updated"}') === 1 ? p : undefined;
      }, 10_000, 'the handled counter') as Map<string, number>;
      const billing = (metric: string, topic: string) => page.get(`${metric}{subscription="billing",topic="${topic}"}`);
      assert.equal(billing('crier_handled_total', 'order.created'), 4);
      assert.equal(billing('crier_handled_total', 'order.updated'), 1);
      assert.equal(billing('crier_retried_total', 'order.updated'), 1);
      assert.equal(billing('crier_failed_total', 'order.updated'), 1);
      assert.equal(billing('crier_failed_total', 'order.cancelled'), 1);
      assert.equal(billing('crier_dead_total', 'order.cancelled'), 1);
      assert.equal(billing('crier_dead_total', 'order.created'), undefined);
      assert.equal(billing('crier_retried_total', 'order.cancelled'), undefined, 'UnrecoverableError: dead at once, never retried');
      // Seven attempts (six deliveries, one of them twice); latency once per delivery, at its first attempt.
      assert.equal(page.get('crier_handler_duration_seconds_count{subscription="billing"}'), 7);
      assert.equal(page.get('crier_end_to_end_latency_seconds_count{subscription="billing"}'), 6);
      assert.equal(page.get('crier_end_to_end_latency_seconds_bucket{le="+Inf",subscription="billing"}'), 6);
      assert.ok(page.get('crier_end_to_end_latency_seconds_sum{subscription="billing"}')! > 0);
    } finally {
      await worker.stop();
      stopObserving();
    }
  });

  test('a delivery whose lease expired shows as stuck, with its age', async () => {
    await publish('stuck.one', 1);
    // A worker that claimed it and died: the row stays running with a lease in the past.
    await db.sql`SELECT count(*) FROM crier.claim('audit', 'gone-worker', 100)`;
    await db.sql`UPDATE crier.deliveries SET locked_until = now() - interval '30 seconds' WHERE worker = 'gone-worker' AND state = 'running'`;
    const page = await scrape(server.url);
    const running = page.get('crier_running{subscription="audit"}')!;
    assert.ok(running >= 1);
    assert.equal(page.get('crier_stuck{subscription="audit"}'), running);
    assert.ok(page.get('crier_oldest_stuck_seconds{subscription="audit"}')! >= 29);
    assert.equal(page.get('crier_stuck{subscription="billing"}'), 0);
  });

  test('a reading that misses its deadline fails the gauges, not the scrape', async () => {
    const late = prometheusMetrics();
    const warnings: string[] = [];
    const gauges = late.collectDatabaseGauges(db.url, { interval: 0, timeout: 300, logger: { info() {}, warn: (m) => warnings.push(m), error() {} } });
    const locker = postgres(db.url, { max: 1, onnotice: () => {} });
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const locked = locker.begin(async (tx) => {
      await tx`LOCK TABLE crier.deliveries IN ACCESS EXCLUSIVE MODE`;
      await held;
    });
    try {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const page = samples(await late.registry.metrics());
      assert.equal(page.get('crier_database_up'), 0);
      assert.equal(page.get('crier_backlog{subscription="billing"}'), undefined, 'no stale numbers');
      assert.match(warnings.join('\n'), /reading the database failed error=.*(statement timeout|did not answer)/);
    } finally {
      release();
      await locked;
      await locker.end();
    }
    const page = samples(await late.registry.metrics());
    assert.equal(page.get('crier_database_up'), 1);
    assert.equal(typeof page.get('crier_backlog{subscription="billing"}'), 'number');
    await gauges.close();
  });
});

test('the exporter needs no more than the auditor role (SELECT on crier\'s views)', async () => {
  const prefix = `crier_metrics_${randomBytes(3).toString('hex')}`;
  const login = `${prefix}_scraper`;
  await db.sql`SELECT crier.create_roles(${prefix})`;
  await db.sql.unsafe(`CREATE ROLE "${login}" LOGIN PASSWORD 'scrape' IN ROLE "${prefix}_auditor"`);
  try {
    const url = new URL(db.url);
    url.username = login;
    url.password = 'scrape';
    const gauges = prometheusMetrics().collectDatabaseGauges(url.toString(), { settle: 0 });
    try {
      const reading = await gauges.refresh();
      assert.deepEqual(reading.subscriptions.map((g) => g.subscription), ['audit', 'billing']);
    } finally {
      await gauges.close();
    }
  } finally {
    await db.sql`SELECT crier.drop_roles(${prefix})`;
    await db.sql.unsafe(`DROP ROLE IF EXISTS "${login}"`);
  }
});

test('the dashboard and the documented alert rules use only metrics crier/prometheus registers', async () => {
  const metrics = prometheusMetrics();
  metrics.observeWorker({ on: () => () => {} });
  const gauges = metrics.collectDatabaseGauges(db.url, { settle: 0 });
  await gauges.close();
  assert.throws(() => metrics.collectDatabaseGauges(db.url), /CRIER_INVALID_OPTION: collectDatabaseGauges: this registry already has crier_backlog/);
  const registered = new Set((await metrics.registry.getMetricsAsJSON()).map((m) => m.name));
  const used = (text: string) => new Set([...text.matchAll(/\bcrier_[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, '')));
  const dashboard = readFileSync(new URL('../docs/grafana/crier-dashboard.json', import.meta.url), 'utf8');
  const docs = readFileSync(new URL('../docs/observability.md', import.meta.url), 'utf8');
  const metricsSection = docs.slice(docs.indexOf('## Metrics'));
  for (const name of [...used(dashboard), ...used(metricsSection)]) assert.ok(registered.has(name), `${name} is not a metric`);
  assert.ok(used(dashboard).size >= 12);
});

describe('crier metrics (the CLI, in a child process)', () => {
  before(() => ensureBuilt());

  function start(args: string[], env: Record<string, string | undefined> = {}) {
    const child = spawn(process.execPath, [...(env.NODE_IMPORT ? ['--import', env.NODE_IMPORT] : []), cli, 'metrics', ...args], {
      env: { ...process.env, NODE_TEST_CONTEXT: undefined, DATABASE_URL: db.url, ...env, NODE_IMPORT: undefined },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.stdout.on('data', (chunk) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    return { child, exited, stderr: () => stderr };
  }

  test('serves the database gauges on /metrics and stops on SIGTERM', async () => {
    const exporter = start(['--port', '0', '--interval', '0']);
    try {
      const url = (await eventually(() => /serving (http:\S+)/.exec(exporter.stderr())?.[1], 20_000, 'the exporter to listen'))!;
      await publish('order.created', 3, { ok: true });
      const page = await scrape(url);
      const [{ backlog }] = (await db.sql`SELECT backlog FROM crier.subscription_gauges WHERE subscription = 'billing'`) as unknown as [{ backlog: string }];
      assert.equal(page.get('crier_backlog{subscription="billing"}'), Number(backlog));
      assert.ok(Number(backlog) >= 3);
      assert.equal(page.get('crier_database_up'), 1);
      assert.equal((await fetch(url.replace('/metrics', '/other'))).status, 404);
    } finally {
      exporter.child.kill('SIGTERM');
    }
    assert.equal(await exporter.exited, 0, exporter.stderr());
  });

  test('names prom-client when it is not installed', async () => {
    const hook = `export async function resolve(s, c, next) { if (s === 'prom-client') { const e = new Error("Cannot find package 'prom-client'"); e.code = 'ERR_MODULE_NOT_FOUND'; throw e; } return next(s, c); }`;
    const register = `data:text/javascript,${encodeURIComponent(`import { register } from 'node:module'; register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}));`)}`;
    const exporter = start(['--port', '0'], { NODE_IMPORT: register });
    assert.equal(await exporter.exited, 1);
    assert.match(exporter.stderr(), /^crier metrics: CRIER_MISSING_PEER: crier metrics needs the package "prom-client": npm install prom-client\n$/);
  });

  test('bad options are usage errors; --help lists the gauges', async () => {
    const bad = await runCli(db.url, ['metrics', '--port', '70000']);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /--port: 70000 is not a port/);
    const badInterval = await runCli(db.url, ['metrics', '--interval', 'soon']);
    assert.equal(badInterval.code, 2, badInterval.stderr);
    const help = await runCli(db.url, ['metrics', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--port PORT/);
    assert.match(help.stdout, /crier_oldest_due_age_seconds/);
  });
});
