// crier subscriptions list | pause | resume | remove.
import type { SubscriptionInfo } from '../../src/admin/subscriptions.ts';
import type { Command } from '../command.ts';
import { age, plural, printJson, printTable } from '../output.ts';

export const subscriptionsListCommand: Command = {
  path: ['subscriptions', 'list'],
  summary: 'every subscription with its topics and policies',
  options: {},
  examples: ['crier subscriptions list', 'crier subscriptions list --json'],
  async run({ admin, out }) {
    const subscriptions = await admin().listSubscriptions();
    if (out.json) return printJson(out, subscriptions);
    if (subscriptions.length === 0) return out.note('no subscriptions yet (workers declare them when they start)');
    await printTable<SubscriptionInfo>(out, [
      { header: 'NAME', value: (s) => s.name },
      { header: 'STATE', value: (s) => (s.paused ? 'paused' : 'active') },
      { header: 'ATTEMPTS', value: (s) => String(s.maxAttempts), align: 'right' },
      { header: 'BACKOFF', value: (s) => `${age(s.backoffBaseMs / 1000)}..${age(s.backoffMaxMs / 1000)}` },
      { header: 'LEASE', value: (s) => age(s.leaseMs / 1000) },
      { header: 'TOPICS', value: (s) => s.topics.join(' ') },
    ], subscriptions);
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
    'that declare it first: a worker that starts again declares it again.',
  options: { force: { type: 'boolean', description: 'remove even with pending or running deliveries (deleted unhandled)' } },
  examples: ['crier subscriptions remove old-projection', 'crier subscriptions remove old-projection --force'],
  async run({ admin, positionals, values, out }) {
    const name = positionals[0]!;
    const deleted = await admin().removeSubscription(name, { force: values.force === true });
    if (out.json) return printJson(out, { subscription: name, removed: true, deliveriesDeleted: deleted });
    out.write(`removed ${name} and ${plural(deleted, 'delivery', 'deliveries')}\n`);
  },
};
