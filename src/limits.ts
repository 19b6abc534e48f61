// Size limits, in bytes of UTF-8, of the values crier keeps in btree indexes, whose rows hold at
// most 2,704 bytes: a value past its index's limit would fail the whole INSERT (Postgres error
// 54000) and abort the caller's transaction. Each limit keeps its index rows under half of that,
// next to the other columns of the index. Checked here before anything is written, and again in
// SQL for crier.publish and plain INSERTs (db/sql/limits.sql, the same numbers: a test checks).
// Payloads and other headers have no limit of crier's own (Postgres caps a jsonb value at 256 MB).
import { quote } from './errors.ts';

/** A topic (or pattern): keyed on in the route cache, idempotency keys and the catalog. Topics are ASCII, so also 255 characters. */
export const MAX_TOPIC_BYTES = 255;
/** An event's key: per-key ordering indexes it beside the subscription's name (at most 100 bytes). */
export const MAX_KEY_BYTES = 1024;
/** An idempotency key: indexed beside its topic. */
export const MAX_IDEMPOTENCY_KEY_BYTES = 255;
/** The correlationId and causationId headers: the log indexes correlationId (crier.event_chain). */
export const MAX_HEADER_ID_BYTES = 1024;

/**
 * `is 3072 bytes (1024 characters), over the limit of 1024 bytes of UTF-8: "漢字…"… (cut, 1024
 * characters)` when `value` is too long, else undefined. Shows only the start of a long value.
 */
export function overLimit(value: string, limit: number): string | undefined {
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes <= limit) return undefined;
  return `is ${bytes} bytes (${characters(value)} characters), over the limit of ${limit} bytes of UTF-8: ${quote(value, 40)}`;
}

/** Unicode characters (code points), as Postgres's char_length counts them. */
function characters(value: string): number {
  let count = 0;
  for (const _ of value) count++;
  return count;
}
