// The deliveries table shared by `events show` and `dead show`.
import type { DeliveryRecord } from '../../src/admin/events.ts';
import { age, printTable, time, type Output } from '../output.ts';

export function printDeliveries(out: Output, deliveries: DeliveryRecord[]): Promise<number> {
  return printTable<DeliveryRecord>(out, [
    { header: 'DELIVERY', value: (d) => d.id, align: 'right' },
    { header: 'SUBSCRIPTION', value: (d) => d.subscription, max: 30 },
    { header: 'STATUS', value: (d) => d.status },
    { header: 'ATTEMPTS', value: (d) => String(d.attempts), align: 'right' },
    { header: 'QUEUED', value: (d) => time(d.queuedAt) },
    { header: 'STARTED', value: (d) => time(d.startedAt) },
    { header: 'FINISHED', value: (d) => time(d.finishedAt) },
    { header: 'LEASE UNTIL', value: (d) => time(d.lockedUntil) },
    { header: 'WORKER', value: workerText, max: 50 },
    { header: 'LAST ERROR', value: lastError },
  ], deliveries);
}

/** A done delivery's error is from an attempt before the one that succeeded: say so. */
function lastError(d: DeliveryRecord): string {
  if (d.lastError === null) return '-';
  return d.state === 'done' ? `(earlier attempt) ${d.lastError}` : d.lastError;
}

/** The worker that holds or last held the delivery, and its state now when crier.workers knows it. */
export function workerText(d: DeliveryRecord): string {
  if (d.worker === null) return '-';
  if (d.workerStatus === null || d.workerLastSeenAt === null) return d.worker;
  if (d.workerStatus === 'live') return `${d.worker} (live)`;
  return `${d.worker} (${d.workerStatus}, last seen ${age((Date.now() - d.workerLastSeenAt.getTime()) / 1000)} ago)`;
}
