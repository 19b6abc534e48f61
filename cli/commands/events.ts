// crier events list | show | tail: the log, one event's deliveries and causation chain, and new events
// as they commit.
import { toMilliseconds } from '../../src/duration.ts';
import type { EventSummary } from '../../src/admin/events.ts';
import type { ChainLink } from '../../src/causation.ts';
import { countOption, stringOption, timeOption, type Command } from '../command.ts';
import { plural, printJson, printJsonArray, printTable, time } from '../output.ts';
import { printDeliveries } from './deliveries.ts';

const summaryOrder = ['waiting', 'pending', 'retrying', 'running', 'done', 'dead'];

function summarize(deliveries: Record<string, number>): string {
  const parts = Object.entries(deliveries)
    .sort(([a], [b]) => summaryOrder.indexOf(a) - summaryOrder.indexOf(b))
    .map(([state, n]) => `${state} ${n}`);
  // No row: no subscription received the event, or none kept a row of it (history 'failures', prune).
  return parts.length === 0 ? 'none kept' : parts.join(', ');
}

export const eventsListCommand: Command = {
  path: ['events', 'list'],
  summary: 'list events (newest first) with what their deliveries are doing',
  options: {
    topic: { type: 'string', value: 'PATTERN', description: 'topic pattern: order.created, order.*, order.#' },
    key: { type: 'string', value: 'KEY', description: 'only events with this key' },
    since: { type: 'string', value: 'TIME', description: 'published at or after: ISO time, or 30m / 24h / 7d ago' },
    until: { type: 'string', value: 'TIME', description: 'published before' },
    limit: { type: 'string', value: 'N', description: 'at most N events (default 50; 0 = all, streamed)' },
    oldest: { type: 'boolean', description: 'oldest first' },
  },
  examples: [
    'crier events list',
    "crier events list --topic 'order.#' --key 42",
    'crier events list --since 24h --until 1h --limit 0 --oldest --json > events.json',
  ],
  async run({ admin, values, out }) {
    const limit = countOption(values, 'limit', 50);
    const events = admin().listEvents({
      topic: stringOption(values, 'topic'),
      key: stringOption(values, 'key'),
      since: timeOption(values, 'since'),
      until: timeOption(values, 'until'),
      limit: limit === 0 ? undefined : limit,
      order: values.oldest ? 'asc' : 'desc',
    });
    if (out.json) return void (await printJsonArray(out, events));
    const count = await printTable<EventSummary>(out, [
      { header: 'ID', value: (e) => e.id, align: 'right' },
      { header: 'PUBLISHED', value: (e) => time(e.publishedAt) },
      { header: 'TOPIC', value: (e) => e.topic, max: 40 },
      { header: 'KEY', value: (e) => e.key ?? '-', max: 24 },
      { header: 'DELIVERIES', value: (e) => summarize(e.deliveries) },
    ], events);
    if (count === 0) out.note('no events match');
    else if (limit !== 0 && count === limit) out.note(`(first ${limit}; --limit N for more, --limit 0 for all)`);
  },
};

export const eventsShowCommand: Command = {
  path: ['events', 'show'],
  summary: 'one event with every delivery (state, attempts, last error, times) and its causation chain',
  details:
    'A subscription with history \'failures\' keeps no row of a delivery that succeeded at its first attempt:\n' +
    'such subscriptions that match the event and kept no row of it are named after the deliveries (--json:\n' +
    '"unrecorded").\n' +
    'When the event belongs to a causation chain (correlationId/causationId headers, set by ctx.publish in\n' +
    'handlers), the whole conversation follows the deliveries, read with crier.event_chain: root first,\n' +
    'each event indented under the event that caused it, this one marked with "*". --json has it as "chain".',
  args: '<id|uuid>',
  positionals: [1, 1],
  options: {},
  examples: ['crier events show 1042', 'crier events show 3f8e1c8a-5f0e-4c59-9a52-1f7f6f0b7c2e --json'],
  async run({ admin, positionals, out }) {
    const { event, deliveries, unrecorded, chain } = await admin().getEvent(positionals[0]!);
    if (out.json) return printJson(out, { event, deliveries, unrecorded, chain });
    out.write(
      [
        `event ${event.id}  ${event.uuid}`,
        `topic      ${event.topic}`,
        `key        ${event.key ?? '-'}`,
        `published  ${time(event.publishedAt)}`,
        `headers    ${JSON.stringify(event.headers)}`,
        `payload    ${JSON.stringify(event.payload, null, 2).replace(/\n/g, '\n           ')}`,
        '',
      ].join('\n'),
    );
    if (deliveries.length === 0 && unrecorded.length === 0) {
      out.write('no deliveries: no subscription matched this topic when it was published (or their rows were pruned)\n');
    } else if (deliveries.length > 0) await printDeliveries(out, deliveries);
    if (unrecorded.length > 0) {
      out.write(
        `${deliveries.length > 0 ? '\n' : ''}no delivery row kept by ${unrecorded.join(', ')} (history 'failures': ` +
          'a delivery that succeeds at its first attempt leaves none; or it was pruned)\n',
      );
    }
    if (chain.length > 0) {
      out.write(`\ncausation chain (correlation ${chain[0]!.correlationId}, ${plural(chain.length, 'event')})\n`);
      await printTable<ChainLink>(out, [
        { header: '', value: (c) => (c.id === event.id ? '*' : '') },
        { header: 'ID', value: (c) => c.id, align: 'right' },
        { header: 'PUBLISHED', value: (c) => time(c.createdAt) },
        { header: 'KEY', value: (c) => c.key ?? '-', max: 24 },
        { header: 'TOPIC', value: (c) => `${'  '.repeat(c.depth)}${c.topic}` },
      ], chain);
    }
  },
};

export const eventsTailCommand: Command = {
  path: ['events', 'tail'],
  runsUntilSignal: true,
  summary: 'follow new events as they commit, until Ctrl-C',
  details:
    'Polls the log by id (every --interval) rather than asking producers to NOTIFY: producers pay nothing\n' +
    'for a tail, and events that commit out of id order are still shown, once. --json prints one JSON object per line.',
  options: {
    topic: { type: 'string', value: 'PATTERN', description: 'only events matching this topic pattern' },
    interval: { type: 'string', value: 'DURATION', description: 'poll interval (default 500ms)' },
  },
  examples: ["crier events tail --topic 'order.#'", 'crier events tail --json | jq .topic'],
  async run({ admin, values, out, signal }) {
    const interval = stringOption(values, 'interval');
    const events = admin().tailEvents({
      topic: stringOption(values, 'topic'),
      intervalMs: interval === undefined ? undefined : toMilliseconds(interval, '--interval'),
      signal,
      onStart: (afterId) => out.note(`following events after ${afterId} (Ctrl-C to stop)`),
    });
    for await (const event of events) {
      if (out.json) out.write(`${JSON.stringify(event)}\n`);
      else {
        const payload = JSON.stringify(event.payload);
        out.write(
          `${time(event.publishedAt)}  ${event.id}  ${event.topic}${event.key ? `  key=${event.key}` : ''}  ${payload.length > 200 ? `${payload.slice(0, 199)}…` : payload}\n`,
        );
      }
    }
  },
};
