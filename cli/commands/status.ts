// crier status: one row per subscription, from the crier.subscription_stats view.
import { stringOption, type Command } from '../command.ts';
import { age, printJson, printTable } from '../output.ts';

export const statusCommand: Command = {
  path: ['status'],
  summary: 'per subscription: pending, running, stuck, retrying, dead, done, waiting, blocked keys, lag, live workers, paused',
  details:
    'pending: never attempted yet (or requeued); retrying: waiting for another attempt after a failure;\n' +
    'waiting: (ordered subscriptions) queued behind an earlier delivery of the same key;\n' +
    'blocked: keys whose head delivery is dead, so their waiting deliveries cannot move (crier.blocked_keys);\n' +
    'lag: how long the oldest due delivery has been waiting; oldest: when the oldest pending one was queued;\n' +
    'stuck: running deliveries making no progress (their lease ran out, or their worker stopped beating),\n' +
    'with how long the oldest has been stuck; "crier workers" shows who holds them (stale: killed, hung or\n' +
    'cut off; they come back when their lease runs out); workers: live workers serving the subscription;\n' +
    'done: the done deliveries kept; marked "*" for a subscription with history \'failures\', which keeps only\n' +
    'those that failed or were requeued before they succeeded.',
  options: { subscription: { type: 'string', value: 'NAME', description: 'only this subscription' } },
  examples: ['crier status', 'crier status --subscription billing --json'],
  async run({ admin, values, out }) {
    const name = stringOption(values, 'subscription');
    const stats = await admin().stats(name);
    if (out.json) return printJson(out, stats);
    if (stats.length === 0) {
      out.note('no subscriptions yet (create one with "crier subscriptions create", or a worker creates it when it starts)');
      return;
    }
    await printTable(out, [
      { header: 'SUBSCRIPTION', value: (s) => s.subscription },
      { header: 'PENDING', value: (s) => String(s.pending), align: 'right' },
      { header: 'RUNNING', value: (s) => String(s.running), align: 'right' },
      { header: 'STUCK', value: (s) => (s.stuck === 0 ? '0' : `${s.stuck} (${age(s.stuckSeconds)})`), align: 'right' },
      { header: 'RETRYING', value: (s) => String(s.retrying), align: 'right' },
      { header: 'DEAD', value: (s) => String(s.dead), align: 'right' },
      { header: 'DONE', value: (s) => `${s.done}${s.history === 'failures' ? '*' : ''}`, align: 'right' },
      { header: 'WAITING', value: (s) => String(s.waiting), align: 'right' },
      { header: 'BLOCKED', value: (s) => String(s.blockedKeys), align: 'right' },
      { header: 'LAG', value: (s) => age(s.lagSeconds), align: 'right' },
      { header: 'OLDEST PENDING', value: (s) => (s.oldestPendingAt ? `${age((Date.now() - s.oldestPendingAt.getTime()) / 1000)} ago` : '-') },
      { header: 'WORKERS', value: (s) => String(s.liveWorkers), align: 'right' },
      { header: 'PAUSED', value: (s) => (s.paused ? 'paused' : '-') },
    ], stats);
    if (stats.some((s) => s.history === 'failures')) {
      out.note("* history 'failures': done counts only deliveries that failed before they succeeded; one that succeeded at its first attempt leaves no row");
    }
  },
};
