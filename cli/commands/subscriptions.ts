// crier subscriptions list | create | pause | resume | remove.
import { isId } from '../../src/admin/refs.ts';
import type { CreateSubscriptionOptions, SubscriptionInfo } from '../../src/admin/subscriptions.ts';
import { toTime, type Duration } from '../../src/duration.ts';
import { countOption, listOption, stringOption, UsageError, type Command } from '../command.ts';
import { age, plural, printJson, printTable } from '../output.ts';

export const subscriptionsListCommand: Command = {
  path: ['subscriptions', 'list'],
  summary: 'every subscription with its topics and policies',
  options: {},
  examples: ['crier subscriptions list', 'crier subscriptions list --json'],
  async run({ admin, out }) {
    const subscriptions = await admin().listSubscriptions();
    if (out.json) return printJson(out, subscriptions);
    if (subscriptions.length === 0) return out.note('no subscriptions yet (create one with "crier subscriptions create", or a worker creates it when it starts)');
    await printTable<SubscriptionInfo>(out, [
      { header: 'NAME', value: (s) => s.name },
      { header: 'STATE', value: (s) => (s.paused ? 'paused' : 'active') },
      { header: 'ATTEMPTS', value: (s) => String(s.maxAttempts), align: 'right' },
      { header: 'BACKOFF', value: (s) => `${age(s.backoffBaseMs / 1000)}..${age(s.backoffMaxMs / 1000)}` },
      { header: 'LEASE', value: (s) => age(s.leaseMs / 1000) },
      { header: 'HISTORY', value: (s) => s.history },
      { header: 'TOPICS', value: (s) => s.topics.join(' ') },
    ], subscriptions);
  },
};

export const subscriptionsCreateCommand: Command = {
  path: ['subscriptions', 'create'],
  summary: 'declare a subscription before its workers run (events published from now on wait for it), or change one',
  args: '<name>',
  positionals: [1, 1],
  details:
    'Creates the subscription, or brings an existing one to these topics and options (options not given\n' +
    'keep their stored value; a new subscription gets the defaults: 5 attempts, backoff 1s..5m, lease 30s,\n' +
    'unordered, history full). --history failures keeps no row of a delivery that succeeds at its first\n' +
    'attempt (retried, dead and requeued ones keep theirs; the events stay in the log); it applies from the\n' +
    'next ack, and --history full switches back. Idempotent. Workers adopt the stored subscription and\n' +
    'never change it: when their code says otherwise they log a warning with both values. --from also\n' +
    'delivers the matching events published since then (through replay). The same from SQL:\n' +
    'SELECT crier.create_subscription(...).',
  options: {
    topics: { type: 'string', multiple: true, value: 'PATTERN', description: 'a topic pattern (repeat for several; required)' },
    'max-attempts': { type: 'string', value: 'N', description: 'attempts before a delivery is dead' },
    'backoff-base': { type: 'string', value: 'DURATION', description: 'first retry delay, doubled each attempt (e.g. 1s)' },
    'backoff-max': { type: 'string', value: 'DURATION', description: 'longest retry delay (e.g. 5m)' },
    lease: { type: 'string', value: 'DURATION', description: 'how long a claimed delivery is held (e.g. 30s)' },
    ordered: { type: 'boolean', description: 'per-key FIFO: events of one key handled one at a time, in order' },
    unordered: { type: 'boolean', description: 'turn per-key ordering off' },
    'on-dead': { type: 'string', value: 'block|skip', description: 'ordered: what a dead delivery does to its key' },
    history: { type: 'string', value: 'full|failures', description: 'keep every delivery (full) or only those that did not succeed at once (failures)' },
    from: { type: 'string', value: 'ID|TIME', description: 'backfill: also deliver matching events since this event id, ISO time or 7d / 24h ago' },
  },
  examples: [
    "crier subscriptions create billing --topics 'order.*'",
    "crier subscriptions create shipping --topics 'order.paid' --topics 'order.cancelled' --max-attempts 10 --ordered",
    "crier subscriptions create search-index --topics 'product.#' --from 7d",
    "crier subscriptions create metrics-feed --topics 'order.#' --history failures",
  ],
  async run({ admin, positionals, values, out }) {
    const name = positionals[0]!;
    const topics = listOption(values, 'topics');
    if (topics.length === 0) throw new UsageError("--topics is required (e.g. --topics 'order.*')");
    if (values.ordered === true && values.unordered === true) throw new UsageError('give --ordered or --unordered, not both');
    const onDead = stringOption(values, 'on-dead');
    if (onDead !== undefined && onDead !== 'block' && onDead !== 'skip') throw new UsageError(`--on-dead: ${JSON.stringify(onDead)} is not block or skip`);
    const history = stringOption(values, 'history');
    if (history !== undefined && history !== 'full' && history !== 'failures') {
      throw new UsageError(`--history: ${JSON.stringify(history)} is not full or failures`);
    }
    // Durations are checked by the admin call (CRIER_INVALID_OPTION naming the option).
    const base = stringOption(values, 'backoff-base') as Duration | undefined;
    const max = stringOption(values, 'backoff-max') as Duration | undefined;
    const lease = stringOption(values, 'lease') as Duration | undefined;
    const from = stringOption(values, 'from');
    const ordered = values.ordered === true ? true : values.unordered === true ? false : undefined;
    const spec: CreateSubscriptionOptions = {
      name,
      topics,
      ...(values['max-attempts'] !== undefined ? { maxAttempts: countOption(values, 'max-attempts', 5) } : {}),
      ...(base !== undefined || max !== undefined ? { backoff: { ...(base !== undefined ? { base } : {}), ...(max !== undefined ? { max } : {}) } } : {}),
      ...(lease !== undefined ? { lease } : {}),
      ...(onDead !== undefined ? { ordered: { onDead } } : ordered !== undefined ? { ordered } : {}),
      ...(history !== undefined ? { history } : {}),
      ...(from !== undefined ? { from: isId(from) ? from : toTime(from, '--from') } : {}),
    };
    if (onDead !== undefined && ordered === false) throw new UsageError('--on-dead applies to ordered subscriptions; drop --unordered');
    const result = await admin().createSubscription(spec);
    if (out.json) return printJson(out, result);
    out.write(`${result.outcome === 'unchanged' ? `${name} unchanged` : `${result.outcome} ${name}`} (topics: ${topics.join(' ')})\n`);
    if (result.backfill) out.write(`backfilled ${plural(result.backfill.queued, 'event')} to ${name}\n`);
  },
};

export const subscriptionsPauseCommand: Command = {
  path: ['subscriptions', 'pause'],
  summary: 'stop workers claiming for a subscription (deliveries keep accumulating)',
  args: '<name>',
  positionals: [1, 1],
  details: 'Deliveries already running finish. Resume with "crier subscriptions resume <name>".',
  options: {},
  examples: ['crier subscriptions pause billing'],
  async run({ admin, positionals, out }) {
    const name = positionals[0]!;
    const changed = await admin().pause(name);
    if (out.json) return printJson(out, { subscription: name, paused: true, changed });
    out.write(changed ? `paused ${name}\n` : `${name} was already paused\n`);
  },
};

export const subscriptionsResumeCommand: Command = {
  path: ['subscriptions', 'resume'],
  summary: 'let workers claim for a paused subscription again (and wake them)',
  args: '<name>',
  positionals: [1, 1],
  options: {},
  examples: ['crier subscriptions resume billing'],
  async run({ admin, positionals, out }) {
    const name = positionals[0]!;
    const changed = await admin().resume(name);
    if (out.json) return printJson(out, { subscription: name, paused: false, changed });
    out.write(changed ? `resumed ${name}\n` : `${name} was not paused\n`);
  },
};

export const subscriptionsRemoveCommand: Command = {
  path: ['subscriptions', 'remove'],
  summary: 'delete a subscription and its deliveries (refuses while any are pending, unless --force)',
  args: '<name>',
  positionals: [1, 1],
  details:
    'The events stay; the subscription\'s deliveries (done and dead included) are deleted. Stop the workers\n' +
    'that run it first: a worker that starts again creates it again.',
  options: { force: { type: 'boolean', description: 'remove even with pending or running deliveries (deleted unhandled)' } },
  examples: ['crier subscriptions remove old-projection', 'crier subscriptions remove old-projection --force'],
  async run({ admin, positionals, values, out }) {
    const name = positionals[0]!;
    const deleted = await admin().removeSubscription(name, { force: values.force === true });
    if (out.json) return printJson(out, { subscription: name, removed: true, deliveriesDeleted: deleted });
    out.write(`removed ${name} and ${plural(deleted, 'delivery', 'deliveries')}\n`);
  },
};
