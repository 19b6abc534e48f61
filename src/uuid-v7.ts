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
  const b = random.subarray(used, (used += 16));
  const high = Math.floor(now / 0x10000); // the upper 32 of the 48 timestamp bits
  b[0] = high >>> 24;
  b[1] = (high >>> 16) & 0xff;
  b[2] = (high >>> 8) & 0xff;
  b[3] = high & 0xff;
  b[4] = (now >>> 8) & 0xff;
  b[5] = now & 0xff;
  b[6] = 0x70 | (b[6]! & 0x0f); // version 7
  b[8] = 0x80 | (b[8]! & 0x3f); // variant 10
  const h = (i: number) => hex[b[i]!]!;
  return `${h(0)}${h(1)}${h(2)}${h(3)}-${h(4)}${h(5)}-${h(6)}${h(7)}-${h(8)}${h(9)}-${h(10)}${h(11)}${h(12)}${h(13)}${h(14)}${h(15)}`;
}
