// Errors as values a person can act on: a stable code for programs, a message for people.
// Errors raised by crier's SQL functions carry the same "CRIER_X: message" shape and are mapped back.

export type CrierErrorCode =
  | 'CRIER_INVALID_TOPIC'
  | 'CRIER_TOPIC_TOO_LONG'
  | 'CRIER_INVALID_PATTERN'
  | 'CRIER_INVALID_PAYLOAD'
  | 'CRIER_INVALID_HEADERS'
  | 'CRIER_INVALID_KEY'
  | 'CRIER_KEY_TOO_LONG'
  | 'CRIER_INVALID_IDEMPOTENCY_KEY'
  | 'CRIER_IDEMPOTENCY_KEY_TOO_LONG'
  | 'CRIER_HEADER_TOO_LONG'
  | 'CRIER_INVALID_OPTION'
  | 'CRIER_UNKNOWN_SUBSCRIPTION'
  | 'CRIER_UNKNOWN_EVENT'
  | 'CRIER_UNKNOWN_DELIVERY'
  | 'CRIER_SUBSCRIPTION_BUSY'
  | 'CRIER_INVALID_CATALOG'
  | 'CRIER_UNKNOWN_TOPIC'
  | 'CRIER_NOT_MIGRATED'
  | 'CRIER_CONNECTION'
  | 'CRIER_MISSING_PEER'
  | 'CRIER_BROKER';

export class CrierError extends Error {
  override readonly name = 'CrierError';
  constructor(
    readonly code: CrierErrorCode,
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${code}: ${detail}`, options);
  }
}

/**
 * An input as an error message shows it: JSON-quoted on one line, and cut after `max` characters
 * with its full length, so a 10,000-character mistake does not become a 10,000-character message:
 * `"aaaa…" (10000 characters)`.
 */
export function quote(value: unknown, max = 64): string {
  const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  const chars = [...text]; // whole code points: never half a surrogate pair
  if (chars.length <= max) return typeof value === 'string' ? JSON.stringify(value) : text;
  const head = `${chars.slice(0, max).join('')}…`;
  return `${typeof value === 'string' ? JSON.stringify(head) : head} (${chars.length} characters)`;
}

/** Throw this from a handler when retrying cannot help: the delivery goes straight to dead. */
export class UnrecoverableError extends Error {
  override readonly name = 'UnrecoverableError';
}

const codedMessage = /^(CRIER_[A-Z_]+): (.*)$/s;

/** Turns a Postgres error into a CrierError where crier can say something more useful. */
export function fromDatabaseError(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  // Drizzle wraps the driver's error; the Postgres error is its cause.
  if (!('code' in error) && error.cause instanceof Error && 'code' in error.cause) return fromDatabaseError(error.cause);
  const coded = codedMessage.exec(error.message);
  if (coded) return new CrierError(coded[1] as CrierErrorCode, coded[2]!, { cause: error });
  const code = (error as { code?: string }).code;
  // A missing schema, table or function: crier's own queries raise these only before migrate.
  if (code === '3F000' || code === '42P01' || code === '42883') {
    return new CrierError('CRIER_NOT_MIGRATED', `${error.message} (has "crier migrate" been run on this database and schema?)`, { cause: error });
  }
  if (isConnectionError(error)) {
    return new CrierError('CRIER_CONNECTION', describeConnectionError(error), { cause: error });
  }
  return error;
}

const connectionCodes = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'EPIPE',
  'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT',
  '57P01', '57P02', '57P03', '08000', '08003', '08006', '08001', '08004', '3D000', '28000', '28P01',
]);

export function isConnectionError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && connectionCodes.has(code);
}

export function describeConnectionError(error: unknown): string {
  const e = error as { code?: string; message?: string; address?: string; port?: number };
  const where = e.address ? ` (${e.address}${e.port ? `:${e.port}` : ''})` : '';
  switch (e.code) {
    case 'ECONNREFUSED': return `cannot connect to Postgres${where}: connection refused. Is the server running, and is DATABASE_URL right?`;
    case 'ENOTFOUND': case 'EAI_AGAIN': return `cannot connect to Postgres: host not found${where}. Check the host in DATABASE_URL.`;
    case '3D000': return `${e.message}. Create the database or fix DATABASE_URL.`;
    case '28000': case '28P01': return `${e.message}. Check the user and password in DATABASE_URL.`;
    default: return `lost or could not open the database connection${where}: ${e.message ?? e.code}`;
  }
}
