// Durations as people write them: 250ms, 30s, 5m, 24h, 7d, or a number of milliseconds (1000 or "1000").
import { CrierError, quote } from './errors.ts';

export type Duration = number | `${number}${'ms' | 's' | 'm' | 'h' | 'd'}`;

const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function toMilliseconds(value: Duration | string, what = 'duration'): number {
  if (typeof value === 'number') {
    if (Number.isFinite(value) && value >= 0) return value;
  } else {
    // A bare number is milliseconds, as from a command line ("1000"), as it is as a number.
    const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(value);
    if (match) return Math.round(Number(match[1]) * units[match[2] ?? 'ms']!);
  }
  throw new CrierError(
    'CRIER_INVALID_OPTION',
    `${what}: ${quote(value)} is not a duration; use a number of milliseconds or e.g. "500ms", "30s", "5m", "24h", "7d"`,
  );
}

/**
 * A point in time as operators write it: an ISO timestamp ("2026-05-01", "2026-05-01T12:00:00Z"),
 * or a duration meaning that long before `now` ("30m", "24h", "7d").
 */
export function toTime(value: Date | string, what = 'time', now: Date = new Date()): Date {
  if (value instanceof Date) {
    if (!Number.isNaN(value.getTime())) return value;
  } else if (/^\s*\d{4}-\d{2}-\d{2}/.test(value)) {
    const at = new Date(value.trim());
    if (!Number.isNaN(at.getTime())) return at;
  } else if (/^\s*\d+(?:\.\d+)?\s*(ms|s|m|h|d)\s*$/.test(value)) {
    return new Date(now.getTime() - toMilliseconds(value, what));
  }
  throw new CrierError(
    'CRIER_INVALID_OPTION',
    `${what}: ${quote(value instanceof Date ? String(value) : value)} is not a time; use an ISO timestamp (e.g. "2026-05-01T12:00:00Z") or how long ago (e.g. "30m", "24h", "7d")`,
  );
}
