// What a command is: its words, options, help text with examples, and a run function. main.ts finds
// the command, parses its arguments with node:util parseArgs (strict: unknown options are usage
// errors) and turns errors into exit codes: 0 success, 1 failure, 2 usage error.
import { quote } from '../src/errors.ts';
import { parseArgs } from 'node:util';
import { createAdmin, type Admin } from '../src/admin/index.ts';
import { toTime } from '../src/duration.ts';
import { consoleLogger, createConsoleLogger, type Logger } from '../src/logger.ts';
import type { Io, Output } from './output.ts';

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  /** Placeholder shown in help, e.g. PATTERN. */
  value?: string;
  description: string;
}

export interface GlobalOptions {
  databaseUrl: string | undefined;
  schema: string | undefined;
  json: boolean;
}

export interface CommandInput {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  global: GlobalOptions;
  out: Output;
  /** Connection URL from --database-url or DATABASE_URL (a usage error when neither is given). */
  databaseUrl(): string;
  /** The admin API on that database, opened on first use and closed when the command ends. */
  admin(): Admin;
  /** Aborted on SIGINT/SIGTERM (long-running commands stop cleanly). */
  signal: AbortSignal;
  /** All of stdin, for arguments given as `-`. */
  readStdin(): string;
}

export interface Command {
  /** The words that name it: ['events', 'list']. */
  path: string[];
  summary: string;
  /** Positional arguments as shown in the usage line: '<topic> <json|->'. */
  args?: string;
  /** A paragraph after the summary. */
  details?: string;
  options: Record<string, OptionSpec>;
  examples: string[];
  /** Allowed number of positionals [min, max]. */
  positionals?: [number, number];
  run(input: CommandInput): Promise<number | void>;
}

/** A mistake in how the command was called: exit code 2, with a pointer to --help. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export const globalOptions: Record<string, OptionSpec> = {
  'database-url': { type: 'string', value: 'URL', description: 'Postgres connection URL (default: $DATABASE_URL)' },
  schema: { type: 'string', value: 'NAME', description: 'schema holding crier\'s tables (default: crier)' },
  json: { type: 'boolean', description: 'machine-readable JSON output' },
  help: { type: 'boolean', short: 'h', description: 'show this help' },
};

export function parseCommandArgs(command: Command, args: string[]) {
  const options = { ...globalOptions, ...command.options };
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: Object.fromEntries(
        Object.entries(options).map(([name, o]) => [
          name,
          { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) },
        ]),
      ),
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    // node's own wording, without its advice on "--" and with a long argument cut as ours are.
    const message = (error as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    throw new UsageError(message.replace(/'([^']{65,})'/g, (_, argument: string) => quote(argument)));
  }
  return parsed;
}

export function checkPositionals(command: Command, positionals: string[]): void {
  const [min, max] = command.positionals ?? [0, 0];
  if (positionals.length < min) {
    throw new UsageError(`missing argument: expected ${command.args ?? 'arguments'}`);
  }
  if (positionals.length > max) {
    throw new UsageError(`unexpected argument ${quote(positionals[max])}`);
  }
}

export function makeInput(
  values: CommandInput['values'],
  positionals: string[],
  out: Output,
  signal: AbortSignal,
  io: Pick<Io, 'env' | 'readStdin'>,
): { input: CommandInput; close: () => Promise<void> } {
  const global: GlobalOptions = {
    databaseUrl: values['database-url'] as string | undefined,
    schema: values.schema as string | undefined,
    json: values.json === true,
  };
  let admin: Admin | undefined;
  const databaseUrl = () => {
    const url = global.databaseUrl ?? io.env.DATABASE_URL;
    if (!url) throw new UsageError('no database: pass --database-url URL or set DATABASE_URL');
    checkDatabaseUrl(url, global.databaseUrl === undefined ? 'DATABASE_URL' : '--database-url');
    return url;
  };
  const input: CommandInput = {
    values,
    positionals,
    global,
    out,
    databaseUrl,
    admin: () => (admin ??= createAdmin({ connection: databaseUrl(), schema: global.schema })),
    signal,
    readStdin: () => io.readStdin(),
  };
  return { input, close: async () => admin?.close() };
}

/** A connection URL the driver can use, or a usage error naming where it came from. */
function checkDatabaseUrl(url: string, source: string): void {
  let protocol: string | undefined;
  try {
    protocol = new URL(url).protocol;
  } catch {
    // not a URL at all
  }
  if (protocol !== 'postgres:' && protocol !== 'postgresql:') {
    throw new UsageError(`${source} ${quote(url)} is not a Postgres URL; expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`);
  }
}

/** A string option, or undefined. */
export function stringOption(values: CommandInput['values'], name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

export function listOption(values: CommandInput['values'], name: string): string[] {
  const value = values[name];
  return Array.isArray(value) ? value : typeof value === 'string' ? [value] : [];
}

/** A non-negative whole number option. */
export function countOption(values: CommandInput['values'], name: string, fallback: number): number {
  const value = stringOption(values, name);
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${name}: ${quote(value)} is not a whole number`);
  return Number(value);
}

/** A time option: ISO timestamp or how long ago ("30m", "7d"). */
/** The --log-format option of the commands that run workers (relay, bridge). */
export const logFormatSpec = {
  type: 'string',
  value: 'text|json',
  description: 'log records as key=value lines (default) or JSON lines, on stderr (also CRIER_LOG_FORMAT)',
} as const;

/** The logger for --log-format (default: CRIER_LOG_FORMAT, else text). */
export function logFormatOption(values: CommandInput['values']): Logger {
  const format = stringOption(values, 'log-format');
  if (format !== undefined && format !== 'text' && format !== 'json') throw new UsageError(`--log-format must be text or json, not "${format}"`);
  return format === undefined ? consoleLogger : createConsoleLogger({ format });
}

export function timeOption(values: CommandInput['values'], name: string): Date | undefined {
  const value = stringOption(values, name);
  return value === undefined ? undefined : toTime(value, `--${name}`);
}
