// Transactional handlers: the handler's writes and the ack commit in one transaction, which gives
// exactly-once effects for writes in this database. The ack (crier.complete) keeps its lease guard:
// if this attempt no longer holds the delivery, complete returns nothing and everything rolls back.
// A handler that throws, times out or loses its lease rolls back too; the caller then records the
// failure outside the rolled-back transaction, so the retry policy applies.
// A transaction whose client went silent (a network that holds the bytes) would keep its locks on
// the server, the delivery's row among them, until the server notices the dead connection (hours,
// with default TCP keepalives): no ack, rescue or retry of that delivery could get through. So each
// transaction tells the server to end it once it has been idle longer than its handler may run.
import type postgres from 'postgres';
import { CrierError } from '../errors.ts';
import type { Protocol } from './protocol.ts';

export type TransactionalOutcome = 'done' | 'lease-lost';

class LeaseLost extends Error {}

export async function runTransactional(
  sql: postgres.Sql<any>,
  protocol: Protocol,
  delivery: { deliveryId: string; attempt: number },
  signal: AbortSignal,
  handle: (tx: postgres.TransactionSql<{}>) => unknown,
  /** The server ends the transaction after this long idle (the handler's timeout and a margin); none if undefined. */
  idleLimitMs?: number,
): Promise<TransactionalOutcome> {
  const state = { over: false, abandoned: false };
  const idleLimit = idleLimitMs === undefined ? undefined : String(Math.min(2 ** 31 - 1, Math.max(1, Math.ceil(idleLimitMs))));
  try {
    await sql.begin(async (tx) => {
      // Pipelined ahead of the handler's first query (not awaited: no extra round trip); if it
      // failed, the handler's queries would fail with it.
      if (idleLimit) tx.unsafe(`SELECT set_config('idle_in_transaction_session_timeout', $1, true)`, [idleLimit]).catch(() => {});
      try {
        try {
          await Promise.race([handle(closable(tx as postgres.TransactionSql<{}>, state)), aborted(signal)]);
        } finally {
          state.over = true;
        }
        // begin() failed while the handler ran (its connection closed): the ack must not follow.
        // postgres.js 3.x would write it to the closed socket from a timer, a TypeError that ends
        // the process; never settle instead, as below.
        if (state.abandoned) await new Promise(() => {});
        const done = await protocol.complete([delivery.deliveryId], [delivery.attempt], tx);
        if (!done.has(delivery.deliveryId)) throw new LeaseLost();
      } finally {
        // postgres.js 3.4.9 rejects begin() at once when the connection closes, yet still sends
        // COMMIT or ROLLBACK when this callback settles, to a socket that is gone: a TypeError
        // thrown from a timer, which ends the process. So once begin() has failed (seen after the
        // rejections of this tick have run), this callback never settles; the lease brings the
        // delivery back.
        await new Promise((resolve) => setImmediate(resolve));
        if (state.abandoned) await new Promise(() => {});
      }
    });
    return 'done';
  } catch (error) {
    state.abandoned = true;
    if (error instanceof LeaseLost) return 'lease-lost';
    throw error;
  } finally {
    state.over = true;
  }
}

// A handler can outlive its transaction (timed out, lease lost, connection closed). postgres.js then
// runs its late ctx.tx queries outside any transaction (on a pooled connection), or, on a connection
// that closed, throws from a deferred write and keeps the bytes to send after the reconnect: either
// way a write that should have rolled back could commit (the fault suite, issue 8, caught it as a
// transactional duplicate). So ctx.tx refuses queries once the handler's part of the transaction is over.
function closable(tx: postgres.TransactionSql<{}>, state: { over: boolean }): postgres.TransactionSql<{}> {
  // A rejected promise, as a query would give: `await ctx.tx\`...\`` and `.catch()` both see it.
  const refuse = () =>
    Promise.reject(new CrierError('CRIER_INVALID_OPTION', 'ctx.tx used after its transaction ended (the handler timed out, lost its lease or its connection); the query was not run'));
  const queries = new Set<PropertyKey>(['unsafe', 'file', 'savepoint', 'prepare']);
  return new Proxy(tx, {
    apply: (target, self, args) => (state.over ? refuse() : Reflect.apply(target, self, args)),
    get: (target, name, receiver) => {
      const value = Reflect.get(target, name, receiver);
      if (typeof value !== 'function' || !queries.has(name)) return value;
      return (...args: unknown[]) => (state.over ? refuse() : Reflect.apply(value, target, args));
    },
  });
}

/** Rejects when the attempt is aborted (timeout, lost lease, shutdown), so the transaction rolls back at once. */
function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    const fail = () => reject(signal.reason ?? new Error('aborted'));
    if (signal.aborted) fail();
    else signal.addEventListener('abort', fail, { once: true });
  });
}
