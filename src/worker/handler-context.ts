// What a handler receives as `ctx` for one attempt: the attempt's facts, publishing that carries
// causation, the consumer-side dedup record, and (transactional subscriptions) the transaction the
// ack will commit in. It owns no state beyond the attempt.
//
// One is made per delivery, so it costs what a small object costs: the functions are made only
// when a handler reads them (destructuring `const { publish } = ctx` still works), and the abort
// signal only when a handler asks for it.
import type postgres from 'postgres';
import { CrierError, fromDatabaseError } from '../errors.ts';
import { runQuery, type Executor } from '../executor.ts';
import type { Instrumentation } from '../instrumentation.ts';
import { publishEvents } from '../publish.ts';
import { inSchema } from '../schema-name.ts';
import type { CrierEvent, HandlerContext } from './event.ts';
import type { ClaimedDelivery } from './protocol.ts';

export interface ContextSources {
  subscription: string;
  maxAttempts: number;
  sql: postgres.Sql<any>;
  schema: string;
  /** Adds its headers (trace context) to what the handler publishes. */
  instrumentation?: Instrumentation;
}

export class AttemptContext implements HandlerContext {
  readonly subscription: string;
  readonly deliveryId: string;
  readonly attempt: number;
  readonly maxAttempts: number;

  constructor(
    private readonly sources: ContextSources,
    delivery: ClaimedDelivery,
    private readonly event: CrierEvent,
    private readonly abortSignal: { readonly signal: AbortSignal },
    /** Set for transactional subscriptions. */
    private readonly transaction?: postgres.TransactionSql<{}>,
  ) {
    this.subscription = sources.subscription;
    this.deliveryId = delivery.deliveryId;
    this.attempt = delivery.attempt;
    this.maxAttempts = sources.maxAttempts;
  }

  get signal(): AbortSignal {
    return this.abortSignal.signal;
  }

  get tx(): postgres.TransactionSql<{}> {
    if (!this.transaction) {
      throw new CrierError('CRIER_INVALID_OPTION', `ctx.tx is only given to handlers of transactional subscriptions; declare subscription "${this.subscription}" with transactional: true`);
    }
    return this.transaction;
  }

  get publish(): HandlerContext['publish'] {
    return async (topic, payload, options = {}) => {
      const [event] = await publishEvents(this.executor(), this.sources.schema, [{ ...options, topic, payload, causedBy: this.causedBy() }], this.sources.instrumentation);
      return event!;
    };
  }

  get publishMany(): HandlerContext['publishMany'] {
    return (events) => publishEvents(this.executor(), this.sources.schema, events.map((e) => ({ ...e, causedBy: this.causedBy() })), this.sources.instrumentation);
  }

  get markProcessed(): HandlerContext['markProcessed'] {
    return (on) => this.dedup('mark_processed', on ?? this.executor());
  }

  get isProcessed(): HandlerContext['isProcessed'] {
    return () => this.dedup('is_processed', this.executor());
  }

  private executor(): Executor {
    return this.transaction ?? this.sources.sql;
  }

  private causedBy() {
    return { uuid: this.event.uuid, correlationId: this.event.correlationId };
  }

  private async dedup(fn: 'mark_processed' | 'is_processed', on: Executor): Promise<boolean> {
    try {
      const sql = inSchema(`SELECT crier.${fn}($1, $2::text::bigint) AS result`, this.sources.schema);
      const [row] = await runQuery(on, sql, [this.subscription, this.event.id]);
      return row?.result === true;
    } catch (error) {
      throw fromDatabaseError(error);
    }
  }
}
