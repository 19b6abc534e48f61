// A contestant's worker in its own process (forked by the cell), so its CPU and memory are its own.
// Protocol over the IPC channel:
//   parent -> { type: 'start', contestant, url, layout, tuning, record }   child -> { type: 'ready' }
//   child  -> { type: 'progress', handled } every 20 ms
//   parent -> { type: 'stop' }   child -> { type: 'stopped', handled, peakRssMiB, starts }
// `starts` (only when record is set) pairs each payload's `i` with its handler start time.
import { loadAdapter, type ContestantName, type Layout, type Tuning } from './adapter.ts';
import { now } from './clock.ts';

interface StartMessage {
  type: 'start';
  contestant: ContestantName;
  url: string;
  layout: Layout;
  tuning: Tuning;
  record: boolean;
}

const send = (message: object) => process.send!(message);
let handled = 0;
let peakRss = process.memoryUsage.rss();
const starts: [number, number][] = [];
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
}, 10);
let lastSent = -1;
const progress = setInterval(() => {
  if (handled !== lastSent) send({ type: 'progress', handled });
  lastSent = handled;
}, 20);

let stopWorker: (() => Promise<void>) | undefined;
process.on('message', async (message: StartMessage | { type: 'stop' }) => {
  try {
    if (message.type === 'start') {
      const adapter = await loadAdapter(message.contestant);
      const record = message.record;
      const worker = await adapter.worker(
        message.url,
        message.layout,
        (payload: { i: number }) => {
          if (record) starts.push([payload.i, now()]);
          handled++;
        },
        message.tuning,
      );
      stopWorker = () => worker.stop();
      send({ type: 'ready' });
    } else if (message.type === 'stop') {
      await stopWorker?.();
      clearInterval(sampler);
      clearInterval(progress);
      peakRss = Math.max(peakRss, process.memoryUsage.rss());
      // Disconnect only once the message is written: `starts` makes it hundreds of KB, more than
      // the IPC socket takes at once, and a disconnect closes the channel with the rest unsent (the
      // parent then never hears "stopped").
      process.send!({ type: 'stopped', handled, peakRssMiB: peakRss / 2 ** 20, starts }, () => process.disconnect());
    }
  } catch (error) {
    send({ type: 'error', message: error instanceof Error ? error.stack ?? error.message : String(error) });
    process.exit(1);
  }
});
send({ type: 'loaded' });
