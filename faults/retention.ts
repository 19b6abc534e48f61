// The soak's retention: what an operator's job does while the system runs (crier's own prune:
// finished deliveries older than the window, then events no delivery refers to any more), and the
// matching clean-up of the handlers' records, so the checker judges only what is still in the log.
//
// The soak once pruned with SQL of its own, which deleted an event as soon as none of its
// deliveries was unfinished, even when one of them was done only recently and so kept: that
// delivery's handler records went with the event, and the checker counted it as "completed by an
// attempt that did not finish".
import type postgres from 'postgres';
import { createAdmin } from '../src/index.ts';

/** Deletes finished deliveries older than `olderThan`, then the events nothing refers to any more. */
export async function pruneLikeAnOperator(sql: postgres.Sql, olderThan = '30s'): Promise<{ deliveries: number; events: number }> {
  const { deliveries, events } = await createAdmin({ connection: sql }).prune({ olderThan, events: true });
  return { deliveries, events };
}

/** Forgets the handlers' records of events that were pruned from the log. */
export async function forgetPrunedHandlings(sql: postgres.Sql): Promise<void> {
  for (const table of ['handled', 'handled_tx', 'handled_ordered']) {
    await sql`DELETE FROM ${sql(table)} h WHERE NOT EXISTS (SELECT 1 FROM crier.events e WHERE e.id = h.event_id)`;
  }
}
