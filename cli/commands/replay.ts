// crier replay: queue past events again for one subscription (e.g. to rebuild a projection).
import { isId } from '../../src/admin/refs.ts';
import { toTime } from '../../src/duration.ts';
import { stringOption, UsageError, type Command } from '../command.ts';
import { plural, printJson } from '../output.ts';

export const replayCommand: Command = {
  path: ['replay'],
  summary: 're-deliver past events to a subscription (never twice while one is still pending)',
  details:
    'Events are those matching the subscription\'s own topic patterns (narrowed by --topic), from --from to\n' +
    '--to inclusive (default: the newest event now). An event whose earlier delivery to the subscription is\n' +
    'still pending or running is skipped. Each replayed event gets a new delivery; history keeps the old one.',
  options: {
    subscription: { type: 'string', value: 'NAME', description: 'the subscription to deliver to (required)' },
    from: { type: 'string', value: 'ID|TIME', description: 'first event: an event id, an ISO time, or 7d / 24h ago (required)' },
    to: { type: 'string', value: 'ID|TIME', description: 'last event (inclusive)' },
    topic: { type: 'string', value: 'PATTERN', description: 'only events matching this topic pattern' },
    'dry-run': { type: 'boolean', description: 'count what would be queued; change nothing' },
  },
  examples: [
    'crier replay --subscription order-projection --from 7d --dry-run',
    "crier replay --subscription search-index --from 1000 --to 2000 --topic 'product.#'",
  ],
  async run({ admin, values, out }) {
    const subscription = stringOption(values, 'subscription');
    const from = stringOption(values, 'from');
    if (subscription === undefined) throw new UsageError('--subscription is required');
    if (from === undefined) throw new UsageError('--from is required (an event id, an ISO time, or e.g. 7d)');
    const to = stringOption(values, 'to');
    const bound = (value: string, name: string) => (isId(value) ? value : toTime(value, name));
    const result = await admin().replay({
      subscription,
      from: bound(from, '--from'),
      to: to === undefined ? undefined : bound(to, '--to'),
      topic: stringOption(values, 'topic'),
      dryRun: values['dry-run'] === true,
    });
    if (out.json) return printJson(out, result);
    const range = result.firstEventId ? ` (events ${result.firstEventId}..${result.lastEventId})` : '';
    if (result.queued + result.skipped === 0) out.write('no events in that range match the subscription: nothing replayed\n');
    else out.write(`${result.dryRun ? 'would replay' : 'replayed'} ${plural(result.queued, 'event')} to ${subscription}${range}\n`);
    if (result.skipped > 0) out.write(`skipped ${plural(result.skipped, 'event')} still pending or running for ${subscription}\n`);
  },
};
