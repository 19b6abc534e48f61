// Durations as people write them: 250ms, 30s, 5m, 24h, 7d, or a number of milliseconds.
import { CrierError } from './errors.ts';

export type Duration = number | `${number}${'ms' | 's' | 'm' | 'h' | 'd'}`;

const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function toMilliseconds(value: Duration | string, what = 'duration'): number {
  if (typeof value === 'number') {
    if (Number.isFinite(value) && value >= 0) return value;
  } else {
    const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(value);
    if (match) return Math.round(Number(match[1]) * units[match[2]!]!);
  }
  throw new CrierError(
    'CRIER_INVALID_OPTION',
    `${what}: ${JSON.stringify(value)} is not a duration; use a number of milliseconds or e.g. "500ms", "30s", "5m", "24h", "7d"`,
  );
}
