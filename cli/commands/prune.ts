// crier prune: delete old finished deliveries (and unreferenced events), in short batches.
import { countOption, stringOption, UsageError, type Command } from '../command.ts';
import { plural, printJson, time } from '../output.ts';

export const pruneCommand: Command = {
  path: ['prune'],
  summary: 'delete done deliveries (and, if asked, dead ones and unreferenced events) older than an age',
  details:
    'First drops whole partitions in which every row may go (each DROP locks the table for milliseconds, and\n' +
    'waits at most 1 s for it), then works in primary-key order, a batch per short transaction, through the rest:\n' +
    'it never holds long locks. Pending and running deliveries are never deleted.',
  options: {
    'older-than': { type: 'string', value: 'DURATION', description: 'finished longer ago than this: 30m, 24h, 7d, or milliseconds (required)' },
    dead: { type: 'boolean', description: 'also delete dead deliveries that died that long ago' },
    events: { type: 'boolean', description: 'also delete events that old that no delivery refers to any more' },
    'dry-run': { type: 'boolean', description: 'count what would be deleted; change nothing' },
    'batch-size': { type: 'string', value: 'N', description: 'rows per transaction (default 5000)' },
  },
  examples: ['crier prune --older-than 30d --dry-run', 'crier prune --older-than 7d --dead --events'],
  async run({ admin, values, out }) {
    const olderThan = stringOption(values, 'older-than');
    if (olderThan === undefined) throw new UsageError('--older-than is required (e.g. 30d)');
    const batchSize = countOption(values, 'batch-size', 5000);
    if (batchSize < 1) throw new UsageError('--batch-size must be at least 1');
    const result = await admin().prune({
      olderThan,
      dead: values.dead === true,
      events: values.events === true,
      dryRun: values['dry-run'] === true,
      batchSize,
    });
    if (out.json) return printJson(out, result);
    const what = [plural(result.deliveries, 'delivery', 'deliveries')];
    if (values.events) what.push(plural(result.events, 'event'));
    out.write(
      `${result.dryRun ? 'would delete' : 'deleted'} ${what.join(' and ')} finished before ${time(result.before)} ` +
        `(${plural(result.partitions, 'partition')} whole, ${plural(result.batches, 'transaction')})\n`,
    );
  },
};
