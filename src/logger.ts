// Logging. A Logger is pino-shaped: each level takes (fields, message) or a message alone, so a
// pino (or bunyan) logger is passed as is. crier's own code always goes through toLogger(), which
// also accepts the older {info, warn, error}(message: string) loggers: those get one string, the
// message followed by its fields as key=value.
//
// The default (consoleLogger) writes one line per record to stderr: key=value (logfmt), or JSON
// with CRIER_LOG_FORMAT=json; records below CRIER_LOG_LEVEL (default info) are dropped. Both are
// read when crier is imported.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

/**
 * What the `logger` options accept. Each method is called as `(fields, message)` or `(message)`.
 * The first parameter is typed loosely so that both pino's methods and `(message: string) => void`
 * fit; toLogger() decides at run time which call a logger can take (see takesFields).
 */
export interface Logger {
  debug?(fieldsOrMessage: any, message?: string): void;
  info(fieldsOrMessage: any, message?: string): void;
  warn(fieldsOrMessage: any, message?: string): void;
  error(fieldsOrMessage: any, message?: string): void;
  /** pino's: when present, crier builds no debug record the logger would drop. */
  isLevelEnabled?(level: string): boolean;
}

const levels: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];
const levelRank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

function envLevel(): LogLevel {
  const level = process.env.CRIER_LOG_LEVEL?.toLowerCase();
  return levels.includes(level as LogLevel) ? (level as LogLevel) : 'info';
}

export type LogFormat = 'text' | 'json';

export interface ConsoleLoggerOptions {
  /** 'text': key=value (logfmt); 'json': one object a line. Default: CRIER_LOG_FORMAT, else text. */
  format?: LogFormat;
  /** Records below this level are dropped. Default: CRIER_LOG_LEVEL, else info. */
  level?: LogLevel;
  /** Where each line goes (default: stderr). */
  write?: (line: string) => void;
}

/**
 * A logger writing one line per record (stderr by default). Format and level not given are read
 * from the environment once, here (consoleLogger: when crier is imported), so that asking whether
 * debug is on costs nothing per handled event.
 */
export function createConsoleLogger(options: ConsoleLoggerOptions = {}): Logger {
  const lowest = levelRank[options.level ?? envLevel()];
  const format = options.format ?? (process.env.CRIER_LOG_FORMAT === 'json' ? 'json' : 'text');
  const enabled = (level: LogLevel) => levelRank[level] >= lowest;
  const write = options.write ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const record = (level: LogLevel) => (fieldsOrMessage: unknown, message?: string) => {
    if (!enabled(level)) return;
    const [fields, msg] = splitArgs(fieldsOrMessage, message);
    write(format === 'json' ? jsonLine(level, msg, fields) : textLine(level, msg, fields));
  };
  return {
    debug: record('debug'),
    info: record('info'),
    warn: record('warn'),
    error: record('error'),
    isLevelEnabled: (level) => enabled(level as LogLevel),
  };
}

export const consoleLogger: Logger = createConsoleLogger();

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {}, isLevelEnabled: () => false };

/**
 * The logger crier's code writes to: `false` is silence, undefined the default, a logger that takes
 * fields (see takesFields) itself, any other one adapted so that it receives one string.
 */
export function toLogger(logger: Logger | false | undefined): Logger {
  if (logger === false) return silentLogger;
  if (logger === undefined) return consoleLogger;
  if (takesFields(logger)) return logger;
  const line = (fieldsOrMessage: unknown, message?: string) => {
    const [fields, msg] = splitArgs(fieldsOrMessage, message);
    const rest = formatFields(fields);
    return rest === '' ? msg : `${msg} ${rest}`;
  };
  return {
    debug: logger.debug ? (a, b) => logger.debug!(line(a, b)) : undefined,
    info: (a, b) => logger.info(line(a, b)),
    warn: (a, b) => logger.warn(line(a, b)),
    error: (a, b) => logger.error(line(a, b)),
    isLevelEnabled: (level) => level !== 'debug' || logger.debug !== undefined,
  };
}

/**
 * Whether a logger takes (fields, message): one with child() (pino, bunyan and most structured
 * loggers), or whose methods declare two parameters. Others were written for one string.
 */
export function takesFields(logger: Logger): boolean {
  if (logger === consoleLogger || logger === silentLogger) return true;
  if (typeof (logger as { child?: unknown }).child === 'function') return true;
  return [logger.info, logger.warn, logger.error].some((method) => typeof method === 'function' && method.length >= 2);
}

/** Whether `logger` would keep a debug record: callers skip building one it would drop. */
export function debugEnabled(logger: Logger): boolean {
  return logger.debug !== undefined && (logger.isLevelEnabled?.('debug') ?? true);
}

function splitArgs(fieldsOrMessage: unknown, message: string | undefined): [LogFields, string] {
  if (typeof fieldsOrMessage === 'string') return [{}, fieldsOrMessage];
  return [(fieldsOrMessage ?? {}) as LogFields, message ?? ''];
}

function textLine(level: LogLevel, message: string, fields: LogFields): string {
  const rest = formatFields(fields);
  return `time=${new Date().toISOString()} level=${level} msg=${formatValue(message)}${rest === '' ? '' : ` ${rest}`}`;
}

function jsonLine(level: LogLevel, message: string, fields: LogFields): string {
  const record: LogFields = { time: new Date().toISOString(), level, msg: message };
  for (const [key, value] of Object.entries(fields)) if (value !== undefined) record[key] = plain(value);
  return JSON.stringify(record);
}

/** key=value pairs, logfmt style: a value with spaces, quotes or '=' is quoted. */
export function formatFields(fields: LogFields): string {
  const pairs: string[] = [];
  for (const [key, value] of Object.entries(fields)) if (value !== undefined) pairs.push(`${key}=${formatValue(plain(value))}`);
  return pairs.join(' ');
}

function formatValue(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text === '' || /[\s"=\\]/.test(text) ? JSON.stringify(text) : text;
}

/** Errors as their message, Dates as ISO text: what a log line can show. */
function plain(value: unknown): unknown {
  if (value instanceof Error) return errorMessage(value);
  if (value instanceof Date) return value.toISOString();
  return value;
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
