// Output for people and for scripts. Tables are readable by default; --json prints JSON (a listing
// is a JSON array streamed row by row, so memory stays flat however long it is). Column widths come
// from the first rows; later rows that are wider are cut with "…" so a stream never re-flows.

export interface Output {
  json: boolean;
  write(text: string): void;
  /** Notes for people (counts, hints); they go to stderr in --json mode so stdout stays parseable. */
  note(text: string): void;
}

/** What a command may use of its process: the real one in the bin, a recorded one in tests. */
export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
  env: Record<string, string | undefined>;
  /** All of stdin (for `-` arguments). */
  readStdin(): string;
  /** Whether SIGINT/SIGTERM cancel the command (process-wide handlers). */
  signals: boolean;
}

export function createOutput(json: boolean, io: Pick<Io, 'stdout' | 'stderr'>): Output {
  return {
    json,
    write: (text) => io.stdout(text),
    note: (text) => (json ? io.stderr : io.stdout)(`${text}\n`),
  };
}

export interface Column<T> {
  header: string;
  value(row: T): string;
  align?: 'right';
  /** Widest a cell may be (default 60); the last column is never cut. */
  max?: number;
}

const sampleRows = 100;

/** Prints rows as a table while they stream in; returns how many there were. */
export async function printTable<T>(out: Output, columns: Column<T>[], rows: AsyncIterable<T> | Iterable<T>): Promise<number> {
  let count = 0;
  let widths: number[] | undefined;
  let buffer: string[][] = [];
  const flushBuffer = () => {
    widths = columns.map((c, i) => Math.min(c.max ?? 60, Math.max(c.header.length, ...buffer.map((r) => r[i]!.length))));
    out.write(formatRow(columns, widths, columns.map((c) => c.header)));
    for (const cells of buffer) out.write(formatRow(columns, widths, cells));
    buffer = [];
  };
  for await (const row of rows) {
    count++;
    const cells = columns.map((c) => oneLine(c.value(row)));
    if (widths) out.write(formatRow(columns, widths, cells));
    else {
      buffer.push(cells);
      if (buffer.length >= sampleRows) flushBuffer();
    }
  }
  if (!widths && count > 0) flushBuffer();
  return count;
}

function formatRow<T>(columns: Column<T>[], widths: number[], cells: string[]): string {
  const last = columns.length - 1;
  const parts = cells.map((cell, i) => {
    if (i === last) return cell;
    const width = widths[i]!;
    const fitted = cell.length > width ? `${cell.slice(0, width - 1)}…` : cell;
    return columns[i]!.align === 'right' ? fitted.padStart(width) : fitted.padEnd(width);
  });
  return `${parts.join('  ').trimEnd()}\n`;
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ⏎ ');
}

/** Prints rows as one JSON array, streaming; returns how many there were. */
export async function printJsonArray<T>(out: Output, rows: AsyncIterable<T> | Iterable<T>): Promise<number> {
  let count = 0;
  out.write('[');
  for await (const row of rows) {
    out.write(`${count === 0 ? '\n' : ',\n'}  ${JSON.stringify(row)}`);
    count++;
  }
  out.write(count === 0 ? ']\n' : '\n]\n');
  return count;
}

export function printJson(out: Output, value: unknown): void {
  out.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** 2026-05-01 12:00:00Z, or "-" for none. */
export function time(value: Date | null | undefined): string {
  if (!value) return '-';
  return `${value.toISOString().slice(0, 19).replace('T', ' ')}Z`;
}

/** A duration in seconds as people read it: 850ms, 42s, 5m 12s, 3h 4m, 2d 5h. */
export function age(seconds: number | null | undefined): string {
  if (seconds == null) return '-';
  if (seconds < 1) return `${Math.max(0, Math.round(seconds * 1000))}ms`;
  const s = Math.floor(seconds);
  if (s < 60) return `${s}s`;
  const pair = (big: number, bigUnit: string, small: number, smallUnit: string) =>
    small === 0 ? `${big}${bigUnit}` : `${big}${bigUnit} ${small}${smallUnit}`;
  if (s < 3600) return pair(Math.floor(s / 60), 'm', s % 60, 's');
  if (s < 86_400) return pair(Math.floor(s / 3600), 'h', Math.floor((s % 3600) / 60), 'm');
  return pair(Math.floor(s / 86_400), 'd', Math.floor((s % 86_400) / 3600), 'h');
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
