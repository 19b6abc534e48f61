// The catalog: each topic's zod schemas, one per version, and the upcasters that read an old
// version as the next one. It is the single source of truth for the payload types of publish and
// of handlers, for validation at both edges, and for the JSON Schemas registered in SQL.
// This module only defines and checks the catalog; it never touches the database. It imports zod
// for types only: the schemas' own methods do the work, so a process without a catalog never
// loads zod (~14 MiB), and a catalog's schemas are checked by the zod copy that made them.
import type { z } from 'zod';
import { CrierError, quote } from '../errors.ts';
import { isValidTopic } from '../topics.ts';
import { closest } from '../suggest.ts';

/** A topic's schemas, oldest first: version n is versions[n - 1]. */
export type Versions = readonly [z.ZodType, ...z.ZodType[]];

/** One function per step: upcast[0] reads a v1 payload as v2, upcast[1] a v2 as v3, ... */
export type Upcasters<V extends readonly z.ZodType[]> = V extends readonly [
  infer A extends z.ZodType,
  infer B extends z.ZodType,
  ...infer Rest extends z.ZodType[],
]
  ? readonly [(payload: z.output<A>) => z.input<B>, ...Upcasters<readonly [B, ...Rest]>]
  : readonly [];

export type TopicDefinition<V extends Versions = Versions> = {
  versions: V;
  /** Shown by `crier catalog list` and stored in SQL. */
  description?: string;
} & (V extends readonly [z.ZodType] ? { upcast?: readonly [] } : { upcast: Upcasters<V> });

export type CatalogShape = Record<string, Versions>;

/** A topic of the catalog as the runtime sees it. */
export interface CatalogEntry {
  readonly topic: string;
  readonly versions: readonly z.ZodType[];
  readonly upcast: readonly ((payload: unknown) => unknown)[];
  /** The version new events are published with: versions.length. */
  readonly latestVersion: number;
  readonly description: string | null;
  /** zod's own JSON Schema of each version (io: "input": what a producer may send), oldest first. */
  readonly jsonSchemas: readonly Record<string, unknown>[];
}

// The default is `any`, not CatalogShape: a catalog's topic names make it invariant in D, and
// plain `Catalog` must accept every catalog.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export class Catalog<D extends CatalogShape = any> {
  /** Type-only: the catalog's shape, for the types derived from it. */
  declare readonly shape: D;
  private readonly entries: ReadonlyMap<string, CatalogEntry>;

  constructor(entries: readonly CatalogEntry[]) {
    this.entries = new Map(entries.map((e) => [e.topic, e]));
  }

  get topics(): (keyof D & string)[] {
    return [...this.entries.keys()] as (keyof D & string)[];
  }

  has(topic: string): topic is keyof D & string {
    return this.entries.has(topic);
  }

  /** The entry of a topic; CRIER_UNKNOWN_TOPIC (with a suggestion) when the catalog has none. */
  entry(topic: string): CatalogEntry {
    const entry = this.entries.get(topic);
    if (entry) return entry;
    const suggestion = closest(topic, this.entries.keys());
    throw new CrierError(
      'CRIER_UNKNOWN_TOPIC',
      `topic ${quote(topic)} is not in the catalog${suggestion ? `; did you mean ${JSON.stringify(suggestion)}?` : ''}`,
    );
  }

  /** Every topic's entry, sorted by topic. */
  list(): CatalogEntry[] {
    return [...this.entries.values()].sort((a, b) => a.topic.localeCompare(b.topic));
  }
}

/** Any catalog, whatever its topics (the constraint of the types derived from one). */
export type AnyCatalog = Catalog;

export type TopicOf<C> = C extends Catalog<infer D> ? keyof D & string : never;
type LatestSchema<V> = V extends readonly [...z.ZodType[], infer L extends z.ZodType] ? L : never;
/** What a producer passes to publish: the latest version's input type. */
export type PayloadInput<C, T extends string> = C extends Catalog<infer D> ? z.input<LatestSchema<D[T]>> : never;
/** What a handler receives: the latest version's parsed output, whatever version was stored. */
export type Payload<C, T extends string> = C extends Catalog<infer D> ? z.output<LatestSchema<D[T]>> : never;

/**
 * Defines the catalog. Each topic lists its versions (zod schemas, oldest first) and, from the
 * second version on, the upcasters that turn a payload of one version into the next:
 *
 *   defineCatalog({
 *     'order.created': { versions: [OrderV1, OrderV2], upcast: [(v1) => ({ ...v1, currency: 'EUR' })] },
 *     'order.shipped': { versions: [Shipped] },
 *   })
 *
 * Throws CRIER_INVALID_CATALOG when a topic name is invalid, an upcaster is missing, or a schema
 * cannot be represented as JSON (payloads are stored as jsonb: z.date() cannot round-trip).
 */
export function defineCatalog<const D extends CatalogShape>(definitions: {
  [T in keyof D]: TopicDefinition<D[T]>;
}): Catalog<D> {
  if (definitions === null || typeof definitions !== 'object' || Array.isArray(definitions)) {
    throw invalid('defineCatalog expects an object mapping topics to { versions, upcast }');
  }
  const entries = Object.entries(definitions as Record<string, TopicDefinition>).map(([topic, definition]) =>
    toEntry(topic, definition),
  );
  return new Catalog<D>(entries);
}

function toEntry(topic: string, definition: TopicDefinition): CatalogEntry {
  if (!isValidTopic(topic)) {
    throw invalid(`${quote(topic)} is not a valid topic: use dot-separated segments of letters, digits, "_" and "-"`);
  }
  const versions = definition?.versions as readonly unknown[] | undefined;
  if (!Array.isArray(versions) || versions.length === 0) {
    throw invalid(`topic "${topic}": versions must be a non-empty array of zod schemas, oldest first`);
  }
  versions.forEach((schema, i) => {
    if (!isZodSchema(schema)) throw invalid(`topic "${topic}" v${i + 1} is not a zod schema`);
  });
  const upcast = (definition.upcast ?? []) as readonly unknown[];
  if (!Array.isArray(upcast) || upcast.length !== versions.length - 1 || upcast.some((f) => typeof f !== 'function')) {
    throw invalid(
      `topic "${topic}" has ${versions.length} versions and needs ${versions.length - 1} upcaster functions (v1→v2, ...), got ${Array.isArray(upcast) ? upcast.length : typeof upcast}`,
    );
  }
  const schemas = versions as readonly z.ZodType[];
  return {
    topic,
    versions: schemas,
    upcast: upcast as CatalogEntry['upcast'],
    latestVersion: schemas.length,
    description: typeof definition.description === 'string' ? definition.description : null,
    jsonSchemas: schemas.map((schema, i) => jsonSchemaOf(topic, i + 1, schema)),
  };
}

/** A zod 4 schema: what crier calls on one (the catalog's validation and its JSON Schemas). */
function isZodSchema(value: unknown): value is z.ZodType {
  const schema = value as Partial<z.ZodType> | null;
  return typeof schema?._zod === 'object' && typeof schema.safeParseAsync === 'function' && typeof schema.toJSONSchema === 'function';
}

/** zod's own converter; a schema it cannot express cannot survive a trip through jsonb either. */
function jsonSchemaOf(topic: string, version: number, schema: z.ZodType): Record<string, unknown> {
  try {
    return schema.toJSONSchema({ io: 'input' }) as Record<string, unknown>;
  } catch (error) {
    throw invalid(
      `topic "${topic}" v${version}: the schema cannot be represented as JSON (${(error as Error).message}); payloads are stored as jsonb, so use JSON types (e.g. z.iso.datetime() rather than z.date())`,
    );
  }
}

function invalid(detail: string): CrierError {
  return new CrierError('CRIER_INVALID_CATALOG', detail);
}
