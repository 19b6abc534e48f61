// crier dead list | show: dead letters and their errors.
import type { DeadFilter, DeadLetter } from '../../src/admin/dead.ts';
import { countOption, stringOption, timeOption, type Command, type CommandInput } from '../command.ts';
import { printJson, printJsonArray, printTable, time } from '../output.ts';
import { workerText } from './deliveries.ts';

export const deadFilterOptions = {
  subscription: { type: 'string', value: 'NAME', description: 'only this subscription' },
  topic: { type: 'string', value: 'PATTERN', description: 'only events matching this topic pattern' },
  error: { type: 'string', value: 'TEXT', description: 'last error contains TEXT (case-insensitive)' },
  since: { type: 'string', value: 'TIME', description: 'died at or after: ISO time, or 30m / 24h / 7d ago' },
  until: { type: 'string', value: 'TIME', description: 'died before' },
} as const;

export function deadFilter(values: CommandInput['values']): DeadFilter {
  return {
    subscription: stringOption(values, 'subscription'),
    topic: stringOption(values, 'topic'),
    error: stringOption(values, 'error'),
    since: timeOption(values, 'since'),
    until: timeOption(values, 'until'),
  };
}

export const deadListCommand: Command = {
  path: ['dead', 'list'],
  summary: 'dead letters (most recent first) with their last error',
  options: {
    ...deadFilterOptions,
    limit: { type: 'string', value: 'N', description: 'at most N (default 50; 0 = all, streamed)' },
  },
  examples: [
    'crier dead list',
    "crier dead list --subscription billing --error timeout --since 24h",
    "crier dead list --topic 'order.#' --limit 0 --json",
  ],
  async run({ admin, values, out }) {
    const limit = countOption(values, 'limit', 50);
    const dead = admin().listDead(deadFilter(values), limit === 0 ? undefined : limit);
    if (out.json) return void (await printJsonArray(out, dead));
    const count = await printTable<DeadLetter>(out, [
      { header: 'DELIVERY', value: (d) => d.deliveryId, align: 'right' },
      { header: 'SUBSCRIPTION', value: (d) => d.subscription, max: 30 },
      { header: 'EVENT', value: (d) => d.eventId, align: 'right' },
      { header: 'TOPIC', value: (d) => d.topic, max: 40 },
      { header: 'ATTEMPTS', value: (d) => String(d.attempts), align: 'right' },
      { header: 'DIED', value: (d) => time(d.diedAt) },
      { header: 'LAST ERROR', value: (d) => d.lastError ?? '-' },
    ], dead);
    if (count === 0) out.note('no dead deliveries match');
    else if (limit !== 0 && count === limit) out.note(`(first ${limit}; --limit N for more, --limit 0 for all)`);
  },
};

export const deadShowCommand: Command = {
  path: ['dead', 'show'],
  summary: 'one delivery with its event, lease, worker, attempt times, last error and stack, and every failed attempt',
  args: '<delivery>',
  positionals: [1, 1],
  options: {},
  examples: ['crier dead show 381', 'crier dead show 381 --json'],
  async run({ admin, positionals, out }) {
    const { delivery, event } = await admin().getDelivery(positionals[0]!);
    if (out.json) return printJson(out, { delivery, event });
    const lines = [
      `delivery ${delivery.id}  ${delivery.subscription}  ${delivery.status}${delivery.state === 'dead' ? '' : ' (not dead)'}`,
      `attempts   ${delivery.attempts}`,
      `queued     ${time(delivery.queuedAt)}`,
      `started    ${time(delivery.startedAt)}  (latest attempt)`,
      `finished   ${time(delivery.finishedAt)}`,
      `lease      ${delivery.lockedUntil ? `until ${time(delivery.lockedUntil)}${delivery.lockedUntil.getTime() < Date.now() ? ' (expired)' : ''}` : '-'}`,
      `worker     ${workerText(delivery)}`,
      `event      ${event ? `${event.id} ${event.topic}${event.key ? ` key=${event.key}` : ''} (${event.uuid})` : `${delivery.eventId} (pruned)`}`,
    ];
    if (event) lines.push(`payload    ${JSON.stringify(event.payload)}`);
    // A done delivery's last error is from an attempt before the one that succeeded.
    lines.push(`${delivery.state === 'done' ? 'earlier attempt error' : 'last error'} ${delivery.lastError ?? '-'}`);
    if (delivery.lastErrorStack) lines.push('stack', ...delivery.lastErrorStack.split('\n').map((l) => `  ${l}`));
    if (delivery.errors.length > 0) {
      lines.push('history');
      for (const entry of delivery.errors as Record<string, unknown>[]) {
        lines.push(
          entry.requeued_by !== undefined
            ? `  ${entry.at}  requeued by ${entry.requeued_by} after ${entry.attempts_before} attempts`
            : `  ${entry.at}  attempt ${entry.attempt}  ${entry.worker ?? ''}  ${entry.error}`,
        );
      }
    }
    out.write(`${lines.join('\n')}\n`);
  },
};
