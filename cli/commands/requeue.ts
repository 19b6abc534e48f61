// crier requeue: dead deliveries back to pending (attempts reset, due now), by id or by filter.
import type { RequeueResult } from '../../src/admin/requeue.ts';
import { listOption, UsageError, type Command } from '../command.ts';
import { plural, printJson, printTable, type Output } from '../output.ts';
import { deadFilter, deadFilterOptions } from './dead.ts';

export const requeueCommand: Command = {
  path: ['requeue'],
  summary: 'move dead deliveries back to pending: attempts reset, due now',
  args: '[delivery-id ...]',
  positionals: [0, 10_000],
  details:
    'Select by delivery ids, by --event, by filters (which combine), or every dead delivery with --all-dead.\n' +
    'Only dead deliveries ever move; safe while workers run. Deliveries keep their subscription\'s policies.',
  options: {
    event: { type: 'string', multiple: true, value: 'ID|UUID', description: 'every dead delivery of this event; repeat for several' },
    ...deadFilterOptions,
    'all-dead': { type: 'boolean', description: 'every dead delivery' },
    'dry-run': { type: 'boolean', description: 'show what would move; change nothing' },
  },
  examples: [
    'crier requeue 381 382',
    'crier requeue --subscription billing --error timeout --dry-run',
    'crier requeue --event 1042',
    'crier requeue --all-dead',
  ],
  async run({ admin, positionals, values, out }) {
    const filter = deadFilter(values);
    const events = listOption(values, 'event');
    const filtered = Object.values(filter).some((v) => v !== undefined);
    if (values['all-dead'] && (filtered || positionals.length > 0 || events.length > 0)) {
      throw new UsageError('--all-dead cannot be combined with ids, --event or filters');
    }
    if (!values['all-dead'] && !filtered && positionals.length === 0 && events.length === 0) {
      throw new UsageError('say what to requeue: delivery ids, --event, a filter (--subscription, --topic, --error, --since, --until) or --all-dead');
    }
    const dryRun = values['dry-run'] === true;
    const result = await admin().requeue(
      { ...filter, deliveryIds: positionals.length > 0 ? positionals : undefined, events: events.length > 0 ? events : undefined, allDead: values['all-dead'] === true },
      { dryRun },
    );
    if (out.json) return printJson(out, result);
    await report(result, out);
  },
};

async function report(result: RequeueResult, out: Output): Promise<void> {
  for (const skip of result.skipped) {
    out.write(`delivery ${skip.deliveryId} is ${skip.state}, not dead: left alone\n`);
  }
  if (result.count === 0) {
    out.write(result.skipped.length > 0 ? 'nothing requeued\n' : 'no dead deliveries match: nothing requeued\n');
    return;
  }
  const by = Object.entries(result.bySubscription).map(([s, n]) => `${s}: ${n}`).join(', ');
  out.write(`${result.dryRun ? 'would requeue' : 'requeued'} ${plural(result.count, 'dead delivery', 'dead deliveries')} (${by})\n`);
  if (result.dryRun) {
    await printTable(out, [
      { header: 'DELIVERY', value: (d) => d.deliveryId, align: 'right' },
      { header: 'SUBSCRIPTION', value: (d) => d.subscription, max: 30 },
      { header: 'EVENT', value: (d) => d.eventId, align: 'right' },
      { header: 'TOPIC', value: (d) => d.topic, max: 40 },
      { header: 'LAST ERROR', value: (d) => d.lastError ?? '-' },
    ], result.sample);
    if (result.count > result.sample.length) out.write(`(the first ${result.sample.length} shown)\n`);
  }
}
