// Builds what a handler receives as `ctx` for one attempt: the attempt's facts, publishing that
// carries causation, the consumer-side dedup record, and (transactional subscriptions) the
// transaction the ack will commit in. It owns no state beyond the attempt.
import type postgres from 'postgres';
import { CrierError, fromDatabaseError } from '../errors.ts';
import { runQuery, type Executor } from '../executor.ts';
import { publishEvents } from '../publish.ts';
import { inSchema } from '../schema-name.ts';
import type { CrierEvent, HandlerContext } from './event.ts';
import type { ClaimedDelivery } from './protocol.ts';

export interface ContextSources {
  subscription: string;
  maxAttempts: number;
  sql: postgres.Sql<any>;
  schema: string;
  delivery: ClaimedDelivery;
  event: CrierEvent;
  signal: AbortSignal;
  /** Set for transactional subscriptions. */
  tx: postgres.TransactionSql<{}> | undefined;
}

export function createHandlerContext(s: ContextSources): HandlerContext {
  const causedBy = { uuid: s.event.uuid, correlationId: s.event.correlationId };
  const executor = (): Executor => s.tx ?? s.sql;
  const dedup = async (fn: 'mark_processed' | 'is_processed', on: Executor) => {
    try {
      const [row] = await runQuery(on, inSchema(`SELECT crier.${fn}($1, $2::text::bigint) AS result`, s.schema), [s.subscription, s.event.id]);
      return row?.result === true;
    } catch (error) {
      throw fromDatabaseError(error);
    }
  };
  return {
    subscription: s.subscription,
    deliveryId: s.delivery.deliveryId,
    attempt: s.delivery.attempt,
    maxAttempts: s.maxAttempts,
    signal: s.signal,
    get tx(): postgres.TransactionSql<{}> {
      if (!s.tx) {
        throw new CrierError('CRIER_INVALID_OPTION', `ctx.tx is only given to handlers of transactional subscriptions; declare subscription "${s.subscription}" with transactional: true`);
      }
      return s.tx;
    },
    async publish(topic, payload, options = {}) {
      const [event] = await publishEvents(executor(), s.schema, [{ ...options, topic, payload, causedBy }]);
      return event!;
    },
    publishMany: (events) => publishEvents(executor(), s.schema, events.map((e) => ({ ...e, causedBy }))),
    markProcessed: (on) => dedup('mark_processed', on ?? executor()),
    isProcessed: () => dedup('is_processed', executor()),
  };
}
