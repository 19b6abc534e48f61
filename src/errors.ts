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

const codedMessage = /^(CRIER_[A-Z_]+): (.*)$/s;

/** Turns a Postgres error into a CrierError where crier can say something more useful. */
export function fromDatabaseError(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  // Drizzle wraps the driver's error; the Postgres error is its cause.
  if (!('code' in error) && error.cause instanceof Error && 'code' in error.cause) return fromDatabaseError(error.cause);
  const coded = codedMessage.exec(error.message);
  if (coded) return new CrierError(coded[1] as CrierErrorCode, coded[2]!, { cause: error });
  const code = (error as { code?: string }).code;
  if (code === '3F000' || (code === '42P01' && /"?crier|relation/.test(error.message)) || code === '42883') {
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
