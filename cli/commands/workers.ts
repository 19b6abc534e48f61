// crier workers: the worker processes, from the crier.workers view.
import { toMilliseconds } from '../../src/duration.ts';
import type { WorkerInfo } from '../../src/admin/workers.ts';
import { stringOption, type Command } from '../command.ts';
import { age, printJson, printTable, time } from '../output.ts';

export const workersCommand: Command = {
  path: ['workers'],
  summary: 'worker processes: live, and gone (stale or stopped) recently; host, pid, version, subscriptions, running',
  details:
    'status: live (seen within three heartbeats), stale (stopped beating without stopping: killed, hung or\n' +
    'cut off; the deliveries it holds come back when their lease runs out), stopped (stopped cleanly).\n' +
    'running: deliveries the worker holds now. Workers gone for a day are forgotten.',
  options: {
    subscription: { type: 'string', value: 'NAME', description: 'only workers serving this subscription' },
    gone: { type: 'string', value: 'DURATION', description: 'list workers gone within this long (default 1h)' },
  },
  examples: ['crier workers', 'crier workers --subscription billing --gone 24h', 'crier workers --json'],
  async run({ admin, values, out }) {
    const gone = stringOption(values, 'gone');
    const workers = await admin().listWorkers({
      subscription: stringOption(values, 'subscription'),
      goneWithinMs: gone === undefined ? undefined : toMilliseconds(gone, '--gone'),
    });
    if (out.json) return printJson(out, workers);
    if (workers.length === 0) {
      out.note('no workers live or gone within that time (workers of crier before the workers table do not register)');
      return;
    }
    const ago = (at: Date) => `${age((Date.now() - at.getTime()) / 1000)} ago`;
    await printTable<WorkerInfo>(out, [
      { header: 'WORKER', value: (w) => w.worker, max: 40 },
      { header: 'STATUS', value: (w) => w.status },
      { header: 'HOST', value: (w) => w.host, max: 30 },
      { header: 'PID', value: (w) => String(w.pid), align: 'right' },
      { header: 'VERSION', value: (w) => w.version },
      { header: 'SINCE', value: (w) => time(w.startedAt) },
      { header: 'LAST SEEN', value: (w) => ago(w.lastSeenAt) },
      { header: 'RUNNING', value: (w) => String(w.running), align: 'right' },
      { header: 'SUBSCRIPTIONS', value: (w) => w.subscriptions.join(','), max: 60 },
    ], workers);
  },
};
