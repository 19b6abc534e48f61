// Parsing the ids operators type: delivery ids, event ids or uuids, subscription names.
import { CrierError, quote } from '../errors.ts';
import { subscriptionNamePattern } from '../subscriptions.ts';

const idSyntax = /^[1-9][0-9]{0,18}$/;
const uuidSyntax = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isId(value: string): boolean {
  return idSyntax.test(value);
}

export function isUuid(value: string): boolean {
  return uuidSyntax.test(value);
}

export function checkId(value: unknown, what: string): string {
  const text = typeof value === 'number' || typeof value === 'bigint' ? String(value) : value;
  if (typeof text === 'string' && isId(text)) return text;
  throw new CrierError('CRIER_INVALID_OPTION', `${what} ${quote(String(value))} is not an id (a positive whole number)`);
}

/** An event is named by its id (position in the log) or its uuid. */
export function checkEventRef(value: unknown): string {
  const text = typeof value === 'number' || typeof value === 'bigint' ? String(value) : value;
  if (typeof text === 'string' && (isId(text) || isUuid(text))) return text.toLowerCase();
  throw new CrierError('CRIER_INVALID_OPTION', `event ${quote(String(value))} is neither an event id (a number) nor a uuid`);
}

export function checkSubscriptionName(value: unknown): string {
  if (typeof value === 'string' && subscriptionNamePattern.test(value)) return value;
  throw new CrierError(
    'CRIER_INVALID_OPTION',
    `subscription name ${quote(value)} is not valid: 1-100 letters, digits, "_", "." or "-"`,
  );
}
