// Prune: delete finished deliveries (and, if asked, events nothing refers to any more) older than a
// given age, through crier.prune_deliveries / crier.prune_events: a walk in primary-key order, a
// few thousand rows per short transaction, so no lock is held for long and workers never wait.
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
  /** Transactions used. */
  batches: number;
}

export async function prune(db: AdminDb, options: PruneOptions): Promise<PruneResult> {
  const ms = toMilliseconds(options.olderThan, 'prune olderThan');
  const batch = options.batchSize ?? 5000;
  const [cutoff] = await query(db, `SELECT now() - $1::float8 * interval '1 millisecond' AS before`, [ms]);
  const before = cutoff!.before as Date;
  const result: PruneResult = { dryRun: options.dryRun ?? false, before, deliveries: 0, events: 0, batches: 0 };

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
