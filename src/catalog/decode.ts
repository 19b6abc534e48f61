// Validation at both edges of the log.
//   publish: the payload, exactly as it will be stored (after a JSON round trip), must parse with
//            the topic's latest version; otherwise nothing is written (CRIER_INVALID_PAYLOAD).
//   consume: the stored payload must parse with the version it was published with, then each
//            upcaster lifts it one version and the next schema checks the result. A payload that
//            does not parse is a poison message: retrying cannot help, so it goes straight to dead.
// The log keeps what the producer sent; defaults and transforms apply when an event is read.
import type { z } from 'zod';
import { CrierError, quote, UnrecoverableError } from '../errors.ts';
import type { Catalog, CatalogEntry } from './define.ts';

type Issue = z.core.$ZodIssue;

/** A payload that does not match its schema, refused before anything was written. */
export class PayloadValidationError extends CrierError {
  constructor(
    readonly topic: string,
    readonly version: number,
    readonly issues: readonly Issue[],
  ) {
    super('CRIER_INVALID_PAYLOAD', `${topic} v${version}: payload does not match the schema: ${formatIssues(issues)}`);
  }
}

/** A stored payload that no handler of this catalog can read: dead at the first attempt. */
export class PoisonMessageError extends UnrecoverableError {
  constructor(
    message: string,
    readonly topic: string,
    readonly version: number,
    readonly issues: readonly Issue[] = [],
  ) {
    super(message);
    // Recorded as last_error "PoisonMessageError: ..." (UnrecoverableError types its name as a literal).
    Object.defineProperty(this, 'name', { value: 'PoisonMessageError' });
  }
}

/** The JSON-safe payload to store and the version it is stored with. */
export async function validateForPublish(
  catalog: Catalog,
  topic: string,
  payload: unknown,
): Promise<{ version: number; payload: unknown }> {
  const entry = catalog.entry(topic);
  const version = entry.latestVersion;
  const stored = jsonRoundTrip(topic, version, payload);
  const result = await entry.versions[version - 1]!.safeParseAsync(stored);
  if (!result.success) throw new PayloadValidationError(topic, version, result.error.issues);
  return { version, payload: stored };
}

/** Reads a stored payload as the latest version of its topic. */
export async function decodeStored(
  catalog: Catalog,
  event: { topic: string; version: number; payload: unknown },
): Promise<unknown> {
  const { topic, version } = event;
  if (!catalog.has(topic)) {
    throw new PoisonMessageError(`topic ${quote(topic)} is not in this catalog; no schema can read it`, topic, version);
  }
  const entry = catalog.entry(topic);
  if (!Number.isInteger(version) || version < 1) {
    throw new PoisonMessageError(`${topic}: stored version ${version} is not a version number`, topic, version);
  }
  if (version > entry.latestVersion) {
    // A newer producer got here first (a rolling deploy): an ordinary failure, retried with
    // backoff, gives this consumer's new version time to arrive.
    throw new Error(
      `${topic} v${version} is newer than this catalog knows (v1..v${entry.latestVersion}); deploy the newer catalog to this consumer`,
    );
  }
  const first = await entry.versions[version - 1]!.safeParseAsync(event.payload);
  if (!first.success) {
    throw new PoisonMessageError(
      `${topic} v${version}: stored payload does not match the schema: ${formatIssues(first.error.issues)}`,
      topic,
      version,
      first.error.issues,
    );
  }
  return upcast(entry, version, first.data);
}

async function upcast(entry: CatalogEntry, from: number, value: unknown): Promise<unknown> {
  let current = value;
  for (let v = from; v < entry.latestVersion; v++) {
    const lifted = entry.upcast[v - 1]!(current);
    const next = await entry.versions[v]!.safeParseAsync(lifted);
    if (!next.success) {
      // A bug in the upcaster, not in the message; fixed code plus a requeue brings it back.
      throw new PoisonMessageError(
        `${entry.topic}: upcasting v${v} to v${v + 1} gave a payload that does not match v${v + 1}: ${formatIssues(next.error.issues)}`,
        entry.topic,
        v + 1,
        next.error.issues,
      );
    }
    current = next.data;
  }
  return current;
}

function jsonRoundTrip(topic: string, version: number, payload: unknown): unknown {
  let json: string | undefined;
  try {
    json = JSON.stringify(payload);
  } catch (error) {
    throw new CrierError('CRIER_INVALID_PAYLOAD', `${topic} v${version}: payload is not JSON-serializable: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (json === undefined) {
    throw new CrierError('CRIER_INVALID_PAYLOAD', `${topic} v${version}: payload is ${String(payload)}, not a JSON value`);
  }
  return JSON.parse(json);
}

/** zod's issues on one line: "items[0].sku: Too small: expected string to have >=1 characters; total: ...". */
export function formatIssues(issues: readonly Issue[], limit = 10): string {
  const shown = issues.slice(0, limit).map((issue) => `${formatPath(issue.path)}: ${issue.message}`);
  if (issues.length > limit) shown.push(`and ${issues.length - limit} more`);
  return shown.join('; ');
}

export function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(root)';
  return path
    .map((key, i) =>
      typeof key === 'number'
        ? `[${key}]`
        : /^[A-Za-z_$][\w$]*$/.test(String(key))
          ? `${i === 0 ? '' : '.'}${String(key)}`
          : `[${JSON.stringify(String(key))}]`,
    )
    .join('');
}
