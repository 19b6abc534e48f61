// Time-ordered event uuids (RFC 9562 version 7): 48 bits of Unix milliseconds, then random bits.
// Publishing draws them here rather than with the column's gen_random_uuid() default: new entries
// of the unique index on crier.events.uuid then land at its right edge instead of on random pages,
// which keeps batch publishing cheaper as the log grows (docs/benchmarks.md). PostgreSQL 15 has no
// uuidv7(); SQL producers keep the random default, and both kinds coexist in the index.
import { randomFillSync } from 'node:crypto';

const hex = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'));
const random = new Uint8Array(16 * 256); // filled 256 uuids at a time: one call to the CSPRNG
let used = random.length;

export function uuidV7(now: number = Date.now()): string {
  if (used === random.length) {
    randomFillSync(random);
    used = 0;
  }
  const b = random;
  const i = used;
  used += 16;
  const high = Math.floor(now / 0x10000); // the upper 32 of the 48 timestamp bits
  // Written out rather than through a helper: this runs for every published event.
  return (
    hex[high >>> 24]! + hex[(high >>> 16) & 0xff]! + hex[(high >>> 8) & 0xff]! + hex[high & 0xff]! + '-' +
    hex[(now >>> 8) & 0xff]! + hex[now & 0xff]! + '-' +
    hex[0x70 | (b[i + 6]! & 0x0f)]! + hex[b[i + 7]!]! + '-' + // version 7
    hex[0x80 | (b[i + 8]! & 0x3f)]! + hex[b[i + 9]!]! + '-' + // variant 10
    hex[b[i + 10]!]! + hex[b[i + 11]!]! + hex[b[i + 12]!]! + hex[b[i + 13]!]! + hex[b[i + 14]!]! + hex[b[i + 15]!]!
  );
}
