// Transactional handlers: the handler's writes and the ack commit in one transaction, which gives
// exactly-once effects for writes in this database. The ack (crier.complete) keeps its lease guard:
// if this attempt no longer holds the delivery, complete returns nothing and everything rolls back.
// A handler that throws, times out or loses its lease rolls back too; the caller then records the
// failure outside the rolled-back transaction, so the retry policy applies.
import type postgres from 'postgres';
import type { Protocol } from './protocol.ts';

export type TransactionalOutcome = 'done' | 'lease-lost';

class LeaseLost extends Error {}

export async function runTransactional(
  sql: postgres.Sql<any>,
  protocol: Protocol,
  delivery: { deliveryId: string; attempt: number },
  signal: AbortSignal,
  handle: (tx: postgres.TransactionSql<{}>) => unknown,
): Promise<TransactionalOutcome> {
  try {
    await sql.begin(async (tx) => {
      await Promise.race([handle(tx as postgres.TransactionSql<{}>), aborted(signal)]);
      const done = await protocol.complete([delivery.deliveryId], [delivery.attempt], tx);
      if (!done.has(delivery.deliveryId)) throw new LeaseLost();
    });
    return 'done';
  } catch (error) {
    if (error instanceof LeaseLost) return 'lease-lost';
    throw error;
  }
}

/** Rejects when the attempt is aborted (timeout, lost lease, shutdown), so the transaction rolls back at once. */
function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    const fail = () => reject(signal.reason ?? new Error('aborted'));
    if (signal.aborted) fail();
    else signal.addEventListener('abort', fail, { once: true });
  });
}
