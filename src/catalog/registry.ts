// The catalog as rows: registerCatalog stores each topic's versions and zod's JSON Schemas in
// crier.catalog_topics / crier.catalog_versions, so that SQL producers can be validated (per-topic
// opt-in) and operators can read the catalog (`crier catalog list|show`). Registering is additive:
// topics registered by other services sharing the database are left alone, and a version is never
// removed or renumbered.
import { CrierError, fromDatabaseError, quote } from '../errors.ts';
import { runQuery, type Executor, type Row } from '../executor.ts';
import { checkSchemaName, defaultSchema, inSchema } from '../schema-name.ts';
import type { Catalog } from './define.ts';
import { closest } from '../suggest.ts';

export interface RegisterOptions {
  schema?: string;
  /**
   * SQL-side validation of inserts into crier.events: true = on for every topic of this catalog,
   * false = off for all of them, a list = on for exactly those topics (off for the others).
   * Left out: flags already in the database are kept (operators own them); new topics start off.
   */
  validate?: boolean | readonly string[];
  /**
   * true: every insert into crier.events must name a registered topic (CRIER_UNKNOWN_TOPIC
   * otherwise, from SQL too); false: any topic may be published. Left out: unchanged (default false).
   */
  rejectUnknownTopics?: boolean;
}

export interface RegisterResult {
  /** Versions stored for the first time, e.g. "order.created v2". */
  added: string[];
  /** Versions whose JSON Schema differed from the stored one and was replaced. */
  changed: string[];
  /** Patterns Postgres cannot check faithfully; SQL-side validation skips them (zod still checks them). */
  uncheckedPatterns: { topic: string; version: number; patterns: string[] }[];
}

const upsertCatalog = `
WITH input AS (
  SELECT * FROM jsonb_to_recordset($1::text::jsonb)
    AS x(topic text, version integer, json_schema jsonb, latest_version integer, description text, validate boolean)
), topics AS (
  INSERT INTO crier.catalog_topics AS t (topic, latest_version, description, validate)
  SELECT topic, latest_version, description, coalesce(validate, false) FROM input WHERE version = 1
  ON CONFLICT (topic) DO UPDATE
  SET latest_version = greatest(t.latest_version, excluded.latest_version),
      description = excluded.description,
      validate = CASE WHEN $2::boolean THEN excluded.validate ELSE t.validate END,
      updated_at = now()
  WHERE (t.latest_version, t.description, t.validate) IS DISTINCT FROM
        (greatest(t.latest_version, excluded.latest_version), excluded.description,
         CASE WHEN $2::boolean THEN excluded.validate ELSE t.validate END)
  RETURNING t.topic
), versions AS (
  INSERT INTO crier.catalog_versions AS v (topic, version, json_schema)
  SELECT topic, version, json_schema FROM input
  ON CONFLICT (topic, version) DO UPDATE
  SET json_schema = excluded.json_schema, updated_at = now()
  WHERE v.json_schema IS DISTINCT FROM excluded.json_schema
  RETURNING v.topic, v.version, (v.xmax = 0) AS inserted
), settings AS (
  UPDATE crier.catalog_settings SET reject_unknown_topics = $3::boolean, updated_at = now()
  WHERE $3::boolean IS NOT NULL AND reject_unknown_topics <> $3::boolean
  RETURNING 1
)
SELECT i.topic, i.version, crier.json_schema_unchecked_patterns(i.json_schema) AS unchecked_patterns,
       coalesce(v.inserted, false) AS added, coalesce(NOT v.inserted, false) AS changed
FROM input i LEFT JOIN versions v ON v.topic = i.topic AND v.version = i.version
ORDER BY i.topic, i.version`;

/**
 * Stores the catalog in the database (idempotent: unchanged rows are not written). Call it at
 * deploy or at startup, after migrate(). Returns what changed and what SQL cannot check.
 */
export async function registerCatalog(
  sql: Executor,
  catalog: Catalog,
  options: RegisterOptions = {},
): Promise<RegisterResult> {
  const schema = checkSchemaName(options.schema ?? defaultSchema);
  const validate = validationFlags(catalog, options.validate);
  const rows = catalog.list().flatMap((entry) =>
    entry.jsonSchemas.map((jsonSchema, i) => ({
      topic: entry.topic,
      version: i + 1,
      json_schema: jsonSchema,
      latest_version: entry.latestVersion,
      description: entry.description,
      validate: validate.get(entry.topic) ?? null,
    })),
  );
  if (rows.length === 0) return { added: [], changed: [], uncheckedPatterns: [] };
  let result: Row[];
  try {
    result = await runQuery(sql, inSchema(upsertCatalog, schema), [
      JSON.stringify(rows),
      validate.size > 0,
      options.rejectUnknownTopics ?? null,
    ]);
  } catch (error) {
    throw fromDatabaseError(error);
  }
  const label = (r: Row) => `${r.topic as string} v${r.version as number}`;
  return {
    added: result.filter((r) => r.added).map(label),
    changed: result.filter((r) => r.changed).map(label),
    uncheckedPatterns: result
      .filter((r) => (r.unchecked_patterns as string[]).length > 0)
      .map((r) => ({ topic: r.topic as string, version: r.version as number, patterns: r.unchecked_patterns as string[] })),
  };
}

function validationFlags(catalog: Catalog, validate: RegisterOptions['validate']): Map<string, boolean> {
  if (validate === undefined) return new Map();
  if (typeof validate === 'boolean') return new Map(catalog.topics.map((t) => [t, validate]));
  if (!Array.isArray(validate)) {
    throw new CrierError('CRIER_INVALID_OPTION', 'validate must be true, false or a list of topics of the catalog');
  }
  for (const topic of validate) catalog.entry(topic); // CRIER_UNKNOWN_TOPIC, with a suggestion
  return new Map(catalog.topics.map((t) => [t, validate.includes(t)]));
}

/** Turns SQL-side validation of one registered topic on or off (the operator's switch). */
export async function setCatalogValidation(
  sql: Executor,
  topic: string,
  validate: boolean,
  options: { schema?: string } = {},
): Promise<void> {
  const schema = checkSchemaName(options.schema ?? defaultSchema);
  try {
    await runQuery(sql, inSchema('SELECT crier.set_catalog_validation($1, $2)', schema), [topic, validate]);
  } catch (error) {
    const mapped = fromDatabaseError(error);
    if (mapped instanceof CrierError && mapped.code === 'CRIER_UNKNOWN_TOPIC') throw await unknownTopic(sql, schema, topic);
    throw mapped;
  }
}

/**
 * Whether inserts into crier.events must name a registered topic (in this schema). Turn it on
 * once every producer's topics are registered: from then on a typo is an error, not a new topic.
 */
export async function setRejectUnknownTopics(sql: Executor, reject: boolean, options: { schema?: string } = {}): Promise<void> {
  const schema = checkSchemaName(options.schema ?? defaultSchema);
  try {
    await runQuery(sql, inSchema('SELECT crier.set_reject_unknown_topics($1)', schema), [reject]);
  } catch (error) {
    throw fromDatabaseError(error);
  }
}

export interface CatalogSettings {
  rejectUnknownTopics: boolean;
}

export async function catalogSettings(sql: Executor, options: { schema?: string } = {}): Promise<CatalogSettings> {
  const schema = checkSchemaName(options.schema ?? defaultSchema);
  try {
    const [row] = await runQuery(sql, inSchema('SELECT reject_unknown_topics FROM crier.catalog_settings', schema), []);
    return { rejectUnknownTopics: row?.reject_unknown_topics === true };
  } catch (error) {
    throw fromDatabaseError(error);
  }
}

export interface CatalogListRow {
  topic: string;
  latestVersion: number;
  versions: number[];
  /** SQL-side validation on inserts. */
  validate: boolean;
  description: string | null;
  registeredAt: Date;
  updatedAt: Date;
}

/** The registered catalog, one row per topic (what `crier catalog list` prints). */
export async function listCatalog(
  sql: Executor,
  options: { schema?: string; /** Only this topic. */ topic?: string } = {},
): Promise<CatalogListRow[]> {
  const schema = checkSchemaName(options.schema ?? defaultSchema);
  let rows: Row[];
  try {
    rows = await runQuery(
      sql,
      inSchema(
        `SELECT topic, latest_version, versions, validate, description, registered_at, updated_at
         FROM crier.catalog WHERE $1::text IS NULL OR topic = $1 ORDER BY topic`,
        schema,
      ),
      [options.topic ?? null],
    );
  } catch (error) {
    throw fromDatabaseError(error);
  }
  return rows.map((r) => ({
    topic: r.topic as string,
    latestVersion: r.latest_version as number,
    versions: r.versions as number[],
    validate: r.validate as boolean,
    description: (r.description as string | null) ?? null,
    registeredAt: toDate(r.registered_at),
    updatedAt: toDate(r.updated_at),
  }));
}

export interface CatalogEntryDetail extends CatalogListRow {
  versionDetails: {
    version: number;
    jsonSchema: Record<string, unknown>;
    /** Patterns SQL-side validation skips (zod still checks them in TypeScript). */
    uncheckedPatterns: string[];
    registeredAt: Date;
    updatedAt: Date;
  }[];
}

/** One registered topic with each version's JSON Schema (what `crier catalog show <topic>` prints). */
export async function showCatalogEntry(
  sql: Executor,
  topic: string,
  options: { schema?: string } = {},
): Promise<CatalogEntryDetail> {
  const schema = checkSchemaName(options.schema ?? defaultSchema);
  const [entry] = await listCatalog(sql, { schema, topic });
  if (!entry) throw await unknownTopic(sql, schema, topic);
  let rows: Row[];
  try {
    rows = await runQuery(
      sql,
      inSchema(
        `SELECT version, json_schema, unchecked_patterns, registered_at, updated_at
         FROM crier.catalog_versions WHERE topic = $1 ORDER BY version`,
        schema,
      ),
      [topic],
    );
  } catch (error) {
    throw fromDatabaseError(error);
  }
  return {
    ...entry,
    versionDetails: rows.map((r) => ({
      version: r.version as number,
      jsonSchema: r.json_schema as Record<string, unknown>,
      uncheckedPatterns: (r.unchecked_patterns as string[] | null) ?? [],
      registeredAt: toDate(r.registered_at),
      updatedAt: toDate(r.updated_at),
    })),
  };
}

async function unknownTopic(sql: Executor, schema: string, topic: string): Promise<CrierError> {
  const registered = await runQuery(sql, inSchema('SELECT topic FROM crier.catalog_topics', schema), []).catch(() => []);
  const suggestion = closest(topic, registered.map((r) => r.topic as string));
  return new CrierError(
    'CRIER_UNKNOWN_TOPIC',
    `topic ${quote(topic)} is not in the registered catalog${suggestion ? `; did you mean ${JSON.stringify(suggestion)}?` : registered.length === 0 ? ' (nothing is registered: call registerCatalog)' : ''}`,
  );
}

function toDate(value: unknown): Date {
  return value instanceof Date ? value : new Date(value as string);
}
