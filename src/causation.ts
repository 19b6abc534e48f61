// Causation chains: events published from handlers carry the handled event's correlationId and
// its uuid as causationId (ctx.publish, or publish(..., { causedBy: event })). This reads a whole
// conversation back as a tree through crier.event_chain, the same function SQL users call.
import { fromDatabaseError } from './errors.ts';
import { runQuery, type Executor } from './executor.ts';
import { checkSchemaName, defaultSchema, inSchema } from './schema-name.ts';

export interface ChainLink {
  /** 0 for the event that started the conversation. */
  depth: number;
  id: string;
  uuid: string;
  topic: string;
  key: string | null;
  causationId: string | null;
  correlationId: string;
  createdAt: Date;
  /** Topics from the root down to this event: "order.placed > payment.requested > ...". */
  path: string;
}

/** The conversation `event` (an id or uuid) belongs to, root first, each event after its cause. */
export async function eventChain(executor: Executor, event: string, options: { schema?: string } = {}): Promise<ChainLink[]> {
  const schema = checkSchemaName(options.schema ?? defaultSchema);
  try {
    const rows = await runQuery(
      executor,
      inSchema(`SELECT depth, id::text AS id, uuid::text AS uuid, topic, key, causation_id, correlation_id, created_at, path
                FROM crier.event_chain($1)`, schema),
      [String(event)],
    );
    return rows.map((r) => ({
      depth: Number(r.depth),
      id: r.id as string,
      uuid: r.uuid as string,
      topic: r.topic as string,
      key: (r.key as string | null) ?? null,
      causationId: (r.causation_id as string | null) ?? null,
      correlationId: r.correlation_id as string,
      createdAt: r.created_at instanceof Date ? r.created_at : new Date(r.created_at as string),
      path: r.path as string,
    }));
  } catch (error) {
    throw fromDatabaseError(error);
  }
}
