// The crier command against a real database: exit codes (0 success, 1 failure, 2 usage error),
// stdout, --json shapes, and bad input: each a one-line clear error that changes nothing. Most cases
// run the command in-process (the same main() as the binary); the built CLI runs as a child process
// where only a process can tell: its exit status, a piped stdin, Ctrl-C.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { registerCatalog } from '../src/index.ts';
import { createCrier, testHistory } from './support/history.ts';
import { setCatalogValidation } from '../src/catalog/registry.ts';
import { catalog } from './fixtures/catalog.ts';
import { assertFails, cli, ensureBuilt, runCli, spawnCli, type Run } from './support/cli.ts';
import { createTestDatabase, deliveryStates, type TestDatabase } from './support/database.ts';

const crier = createCrier();
let db: TestDatabase;

function crierCli(args: string[], options: { input?: string; env?: Record<string, string | undefined> } = {}): Promise<Run> {
  return runCli(db.url, args, options);
}

/** The built binary in a child process, for exit statuses, stdin and signals. */
function spawned(args: string[], options: { input?: string; env?: Record<string, string | undefined> } = {}): Promise<Run> {
  return spawnCli(db.url, args, options);
}

async function count(table: 'events' | 'deliveries'): Promise<number> {
  const [row] = await db.sql.unsafe(`SELECT count(*)::int AS n FROM crier.${table}`);
  return row!.n as number;
}

before(async () => {
  ensureBuilt();
  db = await createTestDatabase('cli');
  // History 'full' whatever the run's default (npm test -- --history): these tests read the audit
  // output over hand-made rows (done counts, deliveries per event, replay after done).
  await db.sql`INSERT INTO crier.subscriptions (name, topics, max_attempts, history) VALUES ('inventory', '{order.#}', 3, 'full'), ('billing', '{order.created}', 3, 'full')`;
});
after(async () => {
  await db.drop();
});

describe('help and usage', () => {
  test('--help everywhere, with examples; exit 0', async () => {
    const top = await crierCli(['--help']);
    assert.equal(top.code, 0);
    for (const name of ['migrate', 'status', 'publish', 'events list', 'dead show', 'requeue', 'replay', 'subscriptions remove', 'prune', 'catalog list']) {
      assert.match(top.stdout, new RegExp(`crier ${name}`));
    }
    const words = ['migrate', 'status', 'publish', 'events list', 'events show', 'events tail', 'dead list', 'dead show',
      'requeue', 'replay', 'subscriptions list', 'subscriptions create', 'subscriptions pause', 'subscriptions resume', 'subscriptions remove', 'prune',
      'catalog list', 'catalog show', 'catalog validation', 'catalog unknown-topics'];
    const helps = await Promise.all(words.map((w) => crierCli([...w.split(' '), '--help'], { env: { DATABASE_URL: undefined } })));
    helps.forEach((run, i) => {
      assert.equal(run.code, 0, words[i]);
      assert.match(run.stdout, new RegExp(`^crier ${words[i]}: `), words[i]);
      assert.match(run.stdout, /\nExamples:\n {2}crier /, `${words[i]} has examples`);
    });
    const group = await crierCli(['events', '--help']);
    assert.equal(group.code, 0);
    assert.match(group.stdout, /crier events tail/);
  });

  test('usage errors exit 2 with one line and a pointer to --help', async () => {
    assertFails(await spawned(['frobnicate']), 2, /unknown command "frobnicate"/);
    assertFails(await crierCli(['status', '--bogus']), 2, /crier status: Unknown option '--bogus'.*--help/);
    assertFails(await crierCli(['publish', 'order.created']), 2, /missing argument: expected <topic> <json\|->/);
    assertFails(await crierCli(['events']), 2, /which one\? list, show, tail/);
    assertFails(await crierCli(['prune']), 2, /--older-than is required/);
    assertFails(await crierCli(['prune', '--older-than', '5 parsecs']), 2, /CRIER_INVALID_OPTION: .*"5 parsecs" is not a duration/);
    assertFails(await crierCli(['events', 'list', '--since', 'yesterday']), 2, /--since: "yesterday" is not a time/);
    assertFails(await crierCli(['events', 'list', '--limit', 'ten']), 2, /--limit: "ten" is not a whole number/);
    assertFails(await crierCli(['requeue']), 2, /say what to requeue/);
    assertFails(await crierCli(['requeue', '--all-dead', '--subscription', 'billing']), 2, /cannot be combined/);
    assertFails(await crierCli(['status'], { env: { DATABASE_URL: undefined } }), 2, /no database: pass --database-url URL or set DATABASE_URL/);
    // An unknown command: one line, the nearest name, the pointer to --help once.
    const typo = await crierCli(['statsu']);
    assertFails(typo, 2, /^crier: unknown command "statsu"; did you mean "status"\? \(run "crier --help" for usage\)\n$/);
    assertFails(await crierCli(['events', 'lst']), 2, /^crier events: unknown command "lst"; did you mean "list"\? \(run "crier events --help" for usage\)\n$/);
    assertFails(await crierCli(['xyzzy']), 2, /^crier: unknown command "xyzzy" \(run "crier --help" for usage\)\n$/);
    // A DATABASE_URL that is not a URL is a usage error that says which setting is wrong.
    assertFails(await crierCli(['status'], { env: { DATABASE_URL: 'not-a-url' } }), 2, /^crier status: DATABASE_URL "not-a-url" is not a Postgres URL; expected postgres:\/\//);
    assertFails(await crierCli(['status', '--database-url', 'mysql://x@h/db']), 2, /--database-url "mysql:\/\/x@h\/db" is not a Postgres URL/);
    // A 10,000-character mistake is cut in the message, with its length.
    const long = await crierCli(['events', 'show', 'a'.repeat(10_000)]);
    assertFails(long, 2, /CRIER_INVALID_OPTION: event "a{64}…" \(10000 characters\) is neither an event id/);
    assert.ok(long.stderr.length < 300, `a short message (${long.stderr.length} characters)`);
    const longOption = await crierCli(['status', `--${'x'.repeat(10_000)}`]);
    assertFails(longOption, 2, /Unknown option "--x{62}…" \(10002 characters\)/);
    assert.ok(longOption.stderr.length < 300, `a short message (${longOption.stderr.length} characters)`);
    const bare = await spawned([]);
    assert.equal(bare.code, 2);
    assert.match(bare.stderr, /Usage: crier <command>/);
  });

  test('an unreachable or unmigrated database is a clear failure (exit 1)', async () => {
    assertFails(await spawned(['status', '--database-url', 'postgres://postgres@127.0.0.1:1/none']), 1, /CRIER_CONNECTION: cannot connect to Postgres .*connection refused/);
    const unmigrated = new URL(db.url);
    unmigrated.pathname = '/postgres';
    assertFails(await crierCli(['status', '--schema', 'nothing_here', '--database-url', unmigrated.toString()]), 1, /CRIER_NOT_MIGRATED/);
    const json = await crierCli(['status', '--json', '--database-url', 'postgres://postgres@127.0.0.1:1/none']);
    assert.equal(json.code, 1);
    const { error } = JSON.parse(json.stderr);
    assert.equal(error.code, 'CRIER_CONNECTION');
    assert.equal(error.command, 'crier status');
    assert.match(error.message, /^cannot connect to Postgres .*connection refused/, 'the message without the command and code prefix');
    const usage = JSON.parse((await crierCli(['status', '--json', '--bogus'])).stderr);
    assert.deepEqual([usage.error.code, usage.error.command], ['CRIER_USAGE', 'crier status']);
    assert.match(usage.error.message, /^Unknown option '--bogus'/);
  });
});

describe('commands', () => {
  test('migrate says what it applied', async () => {
    const fresh = await createTestDatabase('cli_migrate', { migrate: false });
    try {
      const first = await crierCli(['migrate', '--database-url', fresh.url]);
      assert.equal(first.code, 0, first.stderr);
      assert.match(first.stdout, /applied \d+ migrations to schema crier:\n {2}0000_baseline\n/);
      assert.match(first.stdout, /sql\/views\.sql/);
      const again = await crierCli(['migrate', '--database-url', fresh.url, '--json']);
      assert.deepEqual(JSON.parse(again.stdout), { schema: 'crier', applied: [] });
    } finally {
      await fresh.drop();
    }
  });

  test('publish: argument or stdin, key and headers; invalid JSON or topic changes nothing', async () => {
    const one = await crierCli(['publish', 'order.created', '{"id": 42}', '--key', '42', '--header', 'correlationId=c-1', '--json']);
    assert.equal(one.code, 0, one.stderr);
    const published = JSON.parse(one.stdout);
    assert.deepEqual(Object.keys(published).sort(), ['createdAt', 'duplicate', 'id', 'subscriptions', 'topic', 'uuid', 'version']);
    assert.deepEqual(published.subscriptions, ['billing', 'inventory']);
    const [row] = await db.sql`SELECT key, payload, headers FROM crier.events WHERE id = ${published.id}`;
    assert.deepEqual({ ...row }, { key: '42', payload: { id: 42 }, headers: { correlationId: 'c-1' } });

    const piped = await spawned(['publish', 'order.shipped', '-', '--key', '42'], { input: '{"id": 42, "carrier": "ups"}' });
    assert.equal(piped.code, 0, piped.stderr);
    assert.match(piped.stdout, /^published event \d+ \([0-9a-f-]{36}\) on order\.shipped: queued for inventory\n$/);

    const before = await count('events');
    assertFails(await crierCli(['publish', 'order.created', '{"id": 42']), 2, /CRIER_INVALID_PAYLOAD: payload is not valid JSON .*nothing was published/);
    assertFails(await crierCli(['publish', 'order..created', '{}']), 2, /CRIER_INVALID_TOPIC/);
    assertFails(await crierCli(['publish', 'order.created', '{}', '--header', 'novalue']), 2, /expected NAME=VALUE/);
    assert.equal(await count('events'), before, 'nothing published');
  });

  test('status: table and --json; unknown subscription suggests the close name (exit 1)', async () => {
    const table = await crierCli(['status']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^SUBSCRIPTION +PENDING +RUNNING +STUCK +RETRYING +DEAD +DONE +WAITING +BLOCKED +LAG +OLDEST PENDING +WORKERS +PAUSED\n/);
    assert.match(table.stdout, /\ninventory +\d+ +0 +0 +0 +0 +0 +0 /);
    const json = JSON.parse((await crierCli(['status', '--json'])).stdout);
    assert.deepEqual(json.map((s: { subscription: string }) => s.subscription), ['billing', 'inventory']);
    assert.deepEqual(Object.keys(json[0]).sort(), ['blockedKeys', 'dead', 'done', 'history', 'lagSeconds', 'liveWorkers', 'oldestPendingAt', 'paused', 'pending', 'retrying', 'running', 'stuck', 'stuckSeconds', 'stuckSince', 'subscription', 'topics', 'waiting']);
    assertFails(await crierCli(['status', '--subscription', 'invntory']), 1, /CRIER_UNKNOWN_SUBSCRIPTION: no subscription "invntory"; did you mean "inventory"\?/);
  });

  test('status: an ordered subscription with a dead head shows its waiting deliveries and the blocked key', async () => {
    await db.sql`INSERT INTO crier.subscriptions (name, topics, max_attempts, ordered, history) VALUES ('shipping', '{shipment.#}', 3, true, 'full')`;
    await db.sql.begin((tx) => crier.publishMany(tx, [
      ...['a', 'a', 'a'].map((key, n) => ({ topic: 'shipment.booked', payload: { n }, key })),
      { topic: 'shipment.booked', payload: { n: 3 }, key: 'b' },
    ]));
    assert.deepEqual(await deliveryStates(db.sql, 'shipping'), { pending: 2, waiting: 2 }, 'one head per key');
    const before = JSON.parse((await crierCli(['status', '--subscription', 'shipping', '--json'])).stdout);
    assert.deepEqual([before[0].pending, before[0].waiting, before[0].blockedKeys], [2, 2, 0]);

    await db.sql`
      UPDATE crier.deliveries d SET state = 'dead', attempts = 3, last_error = 'no carrier', finished_at = now()
      FROM crier.events e WHERE e.id = d.event_id AND d.subscription = 'shipping' AND e.key = 'a' AND d.state = 'pending'`;
    const table = await crierCli(['status', '--subscription', 'shipping']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /\nshipping +1 +0 +0 +0 +1 +0 +2 +1 /, 'pending b, dead head of a, 2 waiting behind it, 1 blocked key');
    const json = JSON.parse((await crierCli(['status', '--subscription', 'shipping', '--json'])).stdout);
    assert.deepEqual([json[0].dead, json[0].waiting, json[0].blockedKeys], [1, 2, 1]);
    const [blocked] = await db.sql`SELECT count(*)::int AS n FROM crier.blocked_keys WHERE subscription = 'shipping'`;
    assert.equal(json[0].blockedKeys, blocked!.n, 'the same number crier.blocked_keys lists');

    await db.sql`SELECT crier.unblock_key('shipping', 'a')`;
    const after = JSON.parse((await crierCli(['status', '--subscription', 'shipping', '--json'])).stdout);
    assert.deepEqual([after[0].pending, after[0].waiting, after[0].blockedKeys], [2, 1, 0], 'unblocked: the next of a is pending');
    assert.equal((await crierCli(['subscriptions', 'remove', 'shipping', '--force'])).code, 0);
  });

  test('events show: the causation chain below the deliveries, and in --json', async () => {
    const root = await crier.publish(db.sql, 'order.created', { id: 'c1' }, { key: 'c1' });
    const causedBy = (e: { uuid: string }) => ({ uuid: e.uuid, correlationId: root.uuid });
    const payment = await crier.publish(db.sql, 'payment.requested', { id: 'c1' }, { causedBy: causedBy(root) });
    const captured = await crier.publish(db.sql, 'payment.captured', { id: 'c1' }, { causedBy: causedBy(payment) });
    await crier.publish(db.sql, 'unrelated.thing', {});

    const show = await crierCli(['events', 'show', payment.id]);
    assert.equal(show.code, 0, show.stderr);
    const [, chainText] = show.stdout.split(`\ncausation chain (correlation ${root.uuid}, 3 events)\n`);
    assert.ok(chainText, `a chain section: ${show.stdout}`);
    assert.match(chainText!, new RegExp(
      `^ +ID +PUBLISHED +KEY +TOPIC\\n +${root.id} .* c1 +order\\.created\\n\\* +${payment.id} .* - +  payment\\.requested\\n +${captured.id} .* - +    payment\\.captured\\n$`,
    ));
    assert.ok(show.stdout.indexOf('DELIVERY') < show.stdout.indexOf('causation chain'), 'below the deliveries');

    const json = JSON.parse((await crierCli(['events', 'show', captured.uuid, '--json'])).stdout);
    assert.deepEqual(json.chain.map((c: { id: string; depth: number }) => [c.id, c.depth]), [[root.id, 0], [payment.id, 1], [captured.id, 2]]);
    assert.equal(json.chain[2].causationId, payment.uuid);
    const fromRoot = JSON.parse((await crierCli(['events', 'show', root.id, '--json'])).stdout);
    assert.equal(fromRoot.chain.length, 3, 'the root has no headers but starts the chain');

    const alone = await crier.publish(db.sql, 'order.created', { id: 'alone' });
    const aloneShow = await crierCli(['events', 'show', alone.id]);
    assert.doesNotMatch(aloneShow.stdout, /causation chain/);
    assert.deepEqual(JSON.parse((await crierCli(['events', 'show', alone.id, '--json'])).stdout).chain, []);
  });

  test('events show: a done delivery\'s error is labelled as an earlier attempt\'s, a dead one\'s is not', async () => {
    const event = await crier.publish(db.sql, 'order.created', { id: 'recovered' });
    await db.sql`
      UPDATE crier.deliveries SET state = 'done', attempts = 2, last_error = 'warehouse busy', finished_at = now()
      WHERE event_id = ${event.id} AND subscription = 'inventory'`;
    await db.sql`
      UPDATE crier.deliveries SET state = 'dead', attempts = 3, last_error = 'card declined', finished_at = now()
      WHERE event_id = ${event.id} AND subscription = 'billing'`;
    const show = await crierCli(['events', 'show', event.id]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /\n *\d+ +inventory +done +2 .*\(earlier attempt\) warehouse busy\n/);
    assert.match(show.stdout, /\n *\d+ +billing +dead +3 .* card declined\n/);
    assert.doesNotMatch(show.stdout, /earlier attempt\) card declined/);
    await db.sql`DELETE FROM crier.deliveries WHERE event_id = ${event.id}`; // the next tests count dead deliveries
  });

  test('catalog list --json: the registered topics as a JSON array', async () => {
    const empty = await crierCli(['catalog', 'list', '--json']);
    assert.equal(empty.code, 0, empty.stderr);
    assert.deepEqual(JSON.parse(empty.stdout), []);
    await registerCatalog(db.sql, catalog, { validate: ['order.shipped'] });
    const list = await crierCli(['catalog', 'list', '--json']);
    assert.equal(list.code, 0, list.stderr);
    const rows = JSON.parse(list.stdout);
    assert.deepEqual(rows.map((r: { topic: string; latestVersion: number; versions: number[]; validate: boolean }) =>
      [r.topic, r.latestVersion, r.versions, r.validate]), [
      ['order.created', 2, [1, 2], false],
      ['order.shipped', 1, [1], true],
      ['payment.captured', 1, [1], false],
    ]);
    assert.match(list.stderr, /^unknown topics: allowed/, 'the setting is a note on stderr, stdout stays JSON');
    await setCatalogValidation(db.sql, 'order.shipped', false);
  });

  test('events list, show; dead list, show; requeue with dry run; replay; prune', async () => {
    const events = await db.sql.begin((tx) =>
      crier.publishMany(tx, Array.from({ length: 3 }, (_, n) => ({ topic: 'order.created', payload: { n }, key: `k${n}` }))),
    );
    const ids = events.map((e) => e.id);
    await db.sql`
      UPDATE crier.deliveries SET state = 'dead', attempts = 3, last_error = 'gateway timeout', last_error_stack = 'Error: gateway timeout\n    at pay (billing.ts:10)', finished_at = now()
      WHERE subscription = 'billing' AND event_id = ANY (${ids}::bigint[])`;

    const list = await crierCli(['events', 'list', '--topic', 'order.*', '--key', 'k1']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, new RegExp(`^ID +PUBLISHED +TOPIC +KEY +DELIVERIES\\n *${ids[1]} .* order\\.created +k1 +pending 1, dead 1\\n$`));
    const listJson = JSON.parse((await crierCli(['events', 'list', '--limit', '2', '--json'])).stdout);
    assert.equal(listJson.length, 2);
    assert.equal(listJson[0].id, ids[2], 'newest first');

    const show = JSON.parse((await crierCli(['events', 'show', events[0]!.uuid, '--json'])).stdout);
    assert.equal(show.event.id, ids[0]);
    assert.deepEqual(show.deliveries.map((d: { subscription: string; state: string }) => `${d.subscription}:${d.state}`), ['billing:dead', 'inventory:pending']);
    assertFails(await crierCli(['events', 'show', '99999']), 1, /CRIER_UNKNOWN_EVENT: no event 99999/);

    const dead = await crierCli(['dead', 'list', '--subscription', 'billing', '--error', 'TIMEOUT']);
    assert.equal(dead.code, 0, dead.stderr);
    assert.equal(dead.stdout.trimEnd().split('\n').length, 4, 'header and 3 rows');
    assert.match(dead.stdout, /gateway timeout/);
    const deadJson = JSON.parse((await crierCli(['dead', 'list', '--json'])).stdout);
    const deliveryId = deadJson.at(-1).deliveryId;
    const detail = await crierCli(['dead', 'show', deliveryId]);
    assert.match(detail.stdout, /stack\n {2}Error: gateway timeout\n {6}at pay \(billing\.ts:10\)/);
    assertFails(await crierCli(['dead', 'list', '--subscription', 'biling']), 1, /did you mean "billing"\?/);
    assertFails(await crierCli(['requeue', '--subscription', 'biling']), 1, /CRIER_UNKNOWN_SUBSCRIPTION: no subscription "biling"; did you mean "billing"\?/);
    assertFails(await crierCli(['requeue', '--subscription', 'billing', '--since', '3 days']), 2, /--since: "3 days" is not a time/);
    assert.equal((await deliveryStates(db.sql, 'billing')).dead, 3, 'failed requeues changed nothing');

    const dry = await crierCli(['requeue', '--subscription', 'billing', '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /^would requeue 3 dead deliveries \(billing: 3\)\n/);
    assert.equal((await deliveryStates(db.sql, 'billing')).dead, 3, 'dry run changed nothing');
    const none = await crierCli(['requeue', '--subscription', 'billing', '--error', 'no such thing']);
    assert.equal(none.code, 0);
    assert.equal(none.stdout, 'no dead deliveries match: nothing requeued\n');
    const one = JSON.parse((await crierCli(['requeue', deliveryId, '--json'])).stdout);
    assert.equal(one.count, 1);
    const again = await crierCli(['requeue', deliveryId]);
    assert.equal(again.code, 0);
    assert.match(again.stdout, new RegExp(`delivery ${deliveryId} is pending, not dead: left alone\\nnothing requeued\\n`));
    assertFails(await crierCli(['requeue', '99999']), 1, /CRIER_UNKNOWN_DELIVERY: no delivery 99999/);
    const rest = await crierCli(['requeue', '--all-dead']);
    assert.match(rest.stdout, /^requeued 2 dead deliveries \(billing: 2\)\n$/);
    assert.equal((await deliveryStates(db.sql, 'billing')).dead, undefined);

    await db.sql`UPDATE crier.deliveries SET state = 'done', finished_at = now() WHERE subscription = 'inventory'`;
    const replayDry = JSON.parse((await crierCli(['replay', '--subscription', 'inventory', '--from', ids[0]!, '--to', ids[2]!, '--dry-run', '--json'])).stdout);
    assert.deepEqual({ queued: replayDry.queued, skipped: replayDry.skipped }, { queued: 3, skipped: 0 });
    const replayed = await crierCli(['replay', '--subscription', 'inventory', '--from', '1h']);
    assert.equal(replayed.code, 0, replayed.stderr);
    assert.match(replayed.stdout, /^replayed \d+ events to inventory \(events \d+\.\.\d+\)\n$/);
    const twice = await crierCli(['replay', '--subscription', 'inventory', '--from', ids[0]!, '--to', ids[2]!]);
    assert.match(twice.stdout, /replayed 0 events .*\nskipped 3 events still pending or running for inventory\n/);
    assertFails(await crierCli(['replay', '--subscription', 'inventory']), 2, /--from is required/);

    const plainMs = await crierCli(['prune', '--older-than', '1000', '--dry-run', '--json']);
    assert.equal(plainMs.code, 0, `a plain number is milliseconds: ${plainMs.stderr}`);
    assert.ok(Date.parse(JSON.parse(plainMs.stdout).before) > Date.now() - 3_600_000, 'a second ago, not 1000 days or hours');
    const prune = await crierCli(['prune', '--older-than', '7d', '--dry-run', '--json']);
    assert.equal(prune.code, 0, prune.stderr);
    assert.deepEqual(Object.keys(JSON.parse(prune.stdout)).sort(), ['batches', 'before', 'deliveries', 'dryRun', 'events', 'partitions']);
    const pruned = await crierCli(['prune', '--older-than', '1ms', '--events']);
    assert.match(pruned.stdout, /^deleted \d+ deliveries and \d+ events finished before .* \(\d+ partitions? whole, \d+ transactions?\)\n$/);
  });

  test('subscriptions: list, pause, resume, remove refuses with pending unless --force', async () => {
    await db.sql`INSERT INTO crier.subscriptions (name, topics) VALUES ('audit-log', '{audit.#}')`;
    await crierCli(['publish', 'audit.login', '{"user": 1}']);
    const list = await crierCli(['subscriptions', 'list']);
    // Created without a history: the run's default (npm test -- --history), 'full' as migrated.
    assert.match(list.stdout, new RegExp(`^NAME +STATE +ATTEMPTS +BACKOFF +LEASE +HISTORY +TOPICS\\naudit-log +active +5 +1s\\.\\.5m +30s +${testHistory} +audit\\.#\\n`));
    assert.equal((await crierCli(['subscriptions', 'pause', 'audit-log'])).stdout, 'paused audit-log\n');
    assert.equal((await crierCli(['subscriptions', 'pause', 'audit-log'])).stdout, 'audit-log was already paused\n');
    const paused = JSON.parse((await crierCli(['status', '--subscription', 'audit-log', '--json'])).stdout);
    assert.equal(paused[0].paused, true);
    assert.equal((await crierCli(['subscriptions', 'resume', 'audit-log'])).stdout, 'resumed audit-log\n');
    assertFails(await crierCli(['subscriptions', 'remove', 'audit-log']), 1, /CRIER_SUBSCRIPTION_BUSY: subscription 'audit-log' still has 1 pending/);
    assert.equal((await deliveryStates(db.sql, 'audit-log')).pending, 1, 'refused: nothing deleted');
    const forced = JSON.parse((await crierCli(['subscriptions', 'remove', 'audit-log', '--force', '--json'])).stdout);
    assert.deepEqual(forced, { subscription: 'audit-log', removed: true, deliveriesDeleted: 1 });
    assertFails(await crierCli(['subscriptions', 'pause', 'audit-log']), 1, /CRIER_UNKNOWN_SUBSCRIPTION/);
  });

  test('subscriptions create: declares ahead of workers, backfills with --from, changes only what is given', async () => {
    await crierCli(['publish', 'parcel.sent', '{"n": 1}']);
    const created = await crierCli(['subscriptions', 'create', 'parcels', '--topics', 'parcel.*', '--topics', 'parcel.lost.#',
      '--max-attempts', '7', '--lease', '45s', '--ordered', '--from', '1h']);
    assert.equal(created.code, 0, created.stderr);
    assert.equal(created.stdout, 'created parcels (topics: parcel.* parcel.lost.#)\nbackfilled 1 event to parcels\n');
    await crierCli(['publish', 'parcel.lost.at-sea', '{"n": 2}']);
    assert.equal((await deliveryStates(db.sql, 'parcels')).pending, 2, 'the earlier event (backfilled) and the later one wait for the first worker');
    const again = JSON.parse((await crierCli(['subscriptions', 'create', 'parcels', '--topics', 'parcel.*', '--topics', 'parcel.lost.#', '--json'])).stdout);
    assert.deepEqual(again, { subscription: 'parcels', outcome: 'unchanged' });
    assert.equal((await crierCli(['subscriptions', 'create', 'parcels', '--topics', 'parcel.#', '--unordered'])).stdout, 'updated parcels (topics: parcel.#)\n');
    const [row] = await db.sql`SELECT topics, max_attempts, lease_ms, ordered FROM crier.subscriptions WHERE name = 'parcels'`;
    assert.deepEqual({ ...row }, { topics: ['parcel.#'], max_attempts: 7, lease_ms: 45_000, ordered: false });
    assertFails(await crierCli(['subscriptions', 'create', 'parcels']), 2, /--topics is required/);
    assertFails(await crierCli(['subscriptions', 'create', 'parcels', '--topics', 'a..b']), 2, /CRIER_INVALID_PATTERN/);
    assertFails(await crierCli(['subscriptions', 'create', 'parcels', '--topics', 'x', '--lease', 'soon']), 2, /CRIER_INVALID_OPTION: .*lease/);
    assertFails(await crierCli(['subscriptions', 'create', 'parcels', '--topics', 'x', '--max-attempts', 'many']), 2, /--max-attempts: "many" is not a whole number/);
    assert.deepEqual((await db.sql`SELECT topics FROM crier.subscriptions WHERE name = 'parcels'`)[0]!.topics, ['parcel.#'], 'refused: nothing changed');
  });

  test('--schema: every command works on another tenant\'s schema', async () => {
    const migrated = await crierCli(['migrate', '--schema', 'tenant_a']);
    assert.equal(migrated.code, 0, migrated.stderr);
    await db.sql`INSERT INTO tenant_a.subscriptions (name, topics, max_attempts) VALUES ('t-billing', '{t.#}', 1)`;
    const published = JSON.parse((await crierCli(['publish', 't.order', '{"id": 1}', '--schema', 'tenant_a', '--json'])).stdout);
    assert.deepEqual(published.subscriptions, ['t-billing']);
    await db.sql`UPDATE tenant_a.deliveries SET state = 'dead', last_error = 'x', finished_at = now()`;
    const status = JSON.parse((await crierCli(['status', '--schema', 'tenant_a', '--json'])).stdout);
    assert.deepEqual(status.map((s: { subscription: string; dead: number }) => [s.subscription, s.dead]), [['t-billing', 1]]);
    assert.match((await crierCli(['requeue', '--all-dead', '--schema', 'tenant_a'])).stdout, /^requeued 1 dead delivery \(t-billing: 1\)\n$/);
    const replayed = JSON.parse((await crierCli(['replay', '--subscription', 't-billing', '--from', '1', '--schema', 'tenant_a', '--json'])).stdout);
    assert.deepEqual({ queued: replayed.queued, skipped: replayed.skipped }, { queued: 0, skipped: 1 });
    assert.equal((await crierCli(['subscriptions', 'remove', 't-billing', '--force', '--schema', 'tenant_a'])).code, 0);
    assertFails(await crierCli(['status', '--schema', 'Tenant-A']), 2, /CRIER_INVALID_OPTION: schema "Tenant-A" is not a valid schema name/);
  });

  test('events tail follows new events until SIGINT, then exits 0', async () => {
    const child = spawn(process.execPath, [cli, 'events', 'tail', '--topic', 'tail.#', '--interval', '50ms', '--json'], {
      env: { ...process.env, NODE_TEST_CONTEXT: undefined, DATABASE_URL: db.url },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const until = async (done: () => boolean) => {
      const deadline = Date.now() + 10_000;
      while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    };
    try {
      await until(() => /following events after \d+/.test(stderr)); // its position is taken
      assert.match(stderr, /following events after \d+ \(Ctrl-C to stop\)\n/, 'the note goes to stderr with --json');
      await crier.publish(db.sql, 'tail.one', { n: 1 });
      await crier.publish(db.sql, 'other.topic', { n: 2 });
      await crier.publish(db.sql, 'tail.two', { n: 3 }, { key: 'k' });
      await until(() => stdout.split('\n').filter(Boolean).length >= 2);
    } finally {
      child.kill('SIGINT');
    }
    assert.equal(await exited, 0);
    const lines = stdout.trim().split('\n').map((line) => JSON.parse(line));
    assert.deepEqual(lines.map((e) => [e.topic, e.key, e.payload]), [['tail.one', null, { n: 1 }], ['tail.two', 'k', { n: 3 }]]);
  });
});
