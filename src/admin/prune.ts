// Prune: delete finished deliveries (and, if asked, events nothing refers to any more) older than a
// given age. First whole partitions whose every row may go (crier.prune_partitions: a DROP per
// transaction, workers wait milliseconds), then the rest through crier.prune_deliveries /
// crier.prune_events: a walk in primary-key order, a few thousand rows per short transaction, so
// no lock is held for long and workers never wait.
import { toMilliseconds, type Duration } from '../duration.ts';
import { query, toNumber, type AdminDb } from './db.ts';

export interface PruneOptions {
  /** Delete what finished longer ago than this ("30d", "24h", or milliseconds). */
  olderThan: Duration | string;
  /** Also delete dead deliveries (default: dead letters are kept until requeued or pruned with this). */
  dead?: boolean;
  /** Also delete events older than the cutoff that no delivery refers to any more. */
  events?: boolean;
  dryRun?: boolean;
  /** Rows examined per transaction (default 5000). */
  batchSize?: number;
}

export interface PruneResult {
  dryRun: boolean;
  /** The cutoff, on the database clock. */
  before: Date;
  deliveries: number;
  events: number;
  /** Partitions dropped whole (their rows are counted in deliveries and events). */
  partitions: number;
  /** Transactions used. */
  batches: number;
}

export async function prune(db: AdminDb, options: PruneOptions): Promise<PruneResult> {
  const ms = toMilliseconds(options.olderThan, 'prune olderThan');
  const batch = options.batchSize ?? 5000;
  const [cutoff] = await query(db, `SELECT now() - $1::float8 * interval '1 millisecond' AS before`, [ms]);
  const before = cutoff!.before as Date;
  const result: PruneResult = { dryRun: options.dryRun ?? false, before, deliveries: 0, events: 0, partitions: 0, batches: 0 };

  // With dryRun the walks count every row, those of partitions that would go whole too.
  const dropPartitions = async (table: 'deliveries' | 'events'): Promise<number> => {
    let deleted = 0;
    let after: string | null = null;
    do {
      const [row] = await query(
        db,
        'SELECT dropped, deleted, last_id::text FROM crier.prune_partitions($1, $2::timestamptz, $3::boolean, $4::bigint, $5::boolean)',
        [table, before, table === 'deliveries' && (options.dead ?? false), after, result.dryRun],
      );
      result.partitions += toNumber(row!.dropped);
      deleted += toNumber(row!.deleted);
      result.batches++;
      after = row!.last_id;
    } while (after !== null);
    return result.dryRun ? 0 : deleted;
  };

  result.deliveries += await dropPartitions('deliveries');
  let after: string | null = '0';
  while (after !== null) {
    const [row] = await query(
      db,
      'SELECT deleted, last_id::text FROM crier.prune_deliveries($1::timestamptz, $2::boolean, $3::bigint, $4::integer, $5::boolean)',
      [before, options.dead ?? false, after, batch, result.dryRun],
    );
    result.deliveries += toNumber(row!.deleted);
    result.batches++;
    after = row!.last_id;
  }
  if (options.events) result.events += await dropPartitions('events');
  after = options.events ? '0' : null;
  while (after !== null) {
    const [row] = await query(
      db,
      'SELECT deleted, last_id::text FROM crier.prune_events($1::timestamptz, $2::bigint, $3::integer, $4::boolean)',
      [before, after, batch, result.dryRun],
    );
    result.events += toNumber(row!.deleted);
    result.batches++;
    after = row!.last_id;
  }
  return result;
}
