// `crier catalog ...`: the registered event catalog, for operators. A thin shell over
// src/catalog/registry.ts, to be wired into cli/main.ts as the "catalog" command:
//
//   crier catalog list [--json]                    one line per topic: versions, SQL validation
//   crier catalog show <topic> [--json]            every version's JSON Schema
//   crier catalog validation <topic> on|off        SQL-side validation of inserts for one topic
//   crier catalog unknown-topics reject|allow      whether inserts must name a registered topic
//
// It prints and returns an exit code; it never exits the process or opens connections itself.
import { CrierError } from '../src/errors.ts';
import type { Executor } from '../src/executor.ts';
import {
  catalogSettings,
  listCatalog,
  setCatalogValidation,
  setRejectUnknownTopics,
  showCatalogEntry,
} from '../src/catalog/registry.ts';

export interface CatalogCommandIO {
  /** The database to read (postgres.js sql or a Drizzle db). */
  sql: Executor;
  schema?: string;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

export const catalogUsage = `usage:
  crier catalog list [--json]
  crier catalog show <topic> [--json]
  crier catalog validation <topic> on|off
  crier catalog unknown-topics reject|allow`;

/** Runs `crier catalog <argv...>`; resolves with the exit code (0 ok, 1 failed, 2 usage). */
export async function catalogCommand(argv: readonly string[], io: CatalogCommandIO): Promise<number> {
  const json = argv.includes('--json');
  const [command, ...args] = argv.filter((a) => a !== '--json');
  const options = { schema: io.schema };
  try {
    if (command === 'list' && args.length === 0) {
      const rows = await listCatalog(io.sql, options);
      const settings = await catalogSettings(io.sql, options);
      if (json) {
        io.stdout(JSON.stringify({ ...settings, topics: rows }, null, 2));
        return 0;
      }
      if (rows.length === 0) io.stdout('no catalog registered (registerCatalog from TypeScript stores one)');
      else {
        io.stdout(
          table(
            ['TOPIC', 'LATEST', 'VERSIONS', 'SQL VALIDATION', 'DESCRIPTION'],
            rows.map((r) => [r.topic, `v${r.latestVersion}`, r.versions.map((v) => `v${v}`).join(','), r.validate ? 'on' : 'off', r.description ?? '']),
          ),
        );
      }
      io.stdout(
        settings.rejectUnknownTopics
          ? 'unknown topics: rejected (inserts must name a registered topic)'
          : 'unknown topics: allowed (crier catalog unknown-topics reject turns that off)',
      );
      return 0;
    }
    if (command === 'show' && args.length === 1) {
      const entry = await showCatalogEntry(io.sql, args[0]!, options);
      if (json) {
        io.stdout(JSON.stringify(entry, null, 2));
        return 0;
      }
      io.stdout(`topic:          ${entry.topic}`);
      if (entry.description) io.stdout(`description:    ${entry.description}`);
      io.stdout(`latest version: v${entry.latestVersion} (new events are published with it; older ones are upcast when read)`);
      io.stdout(`SQL validation: ${entry.validate ? 'on (inserts into crier.events are checked)' : 'off'}`);
      io.stdout(`registered:     ${entry.registeredAt.toISOString()}, updated ${entry.updatedAt.toISOString()}`);
      for (const version of [...entry.versionDetails].reverse()) {
        io.stdout(`\nv${version.version} JSON Schema:`);
        io.stdout(JSON.stringify(readableOrder(version.jsonSchema), null, 2));
        if (version.uncheckedPatterns.length > 0) {
          io.stdout(`not checked in SQL (ECMAScript-only regex): ${version.uncheckedPatterns.join('  ')}`);
        }
      }
      return 0;
    }
    if (command === 'validation' && args.length === 2 && (args[1] === 'on' || args[1] === 'off')) {
      await setCatalogValidation(io.sql, args[0]!, args[1] === 'on', options);
      io.stdout(`SQL validation of ${args[0]} is ${args[1]}`);
      return 0;
    }
    if (command === 'unknown-topics' && args.length === 1 && (args[0] === 'reject' || args[0] === 'allow')) {
      await setRejectUnknownTopics(io.sql, args[0] === 'reject', options);
      io.stdout(`unknown topics are now ${args[0] === 'reject' ? 'rejected' : 'allowed'}`);
      return 0;
    }
    io.stderr(catalogUsage);
    return 2;
  } catch (error) {
    io.stderr(error instanceof CrierError ? error.message : `crier catalog: ${(error as Error)?.message ?? String(error)}`);
    return 1;
  }
}

// jsonb stores keys shortest first; print the keywords in the order people read a schema.
const keywordOrder = ['$schema', '$id', '$ref', 'title', 'description', 'type', 'const', 'enum', 'properties', 'required', 'additionalProperties'];

const schemaMaps = new Set(['properties', 'patternProperties', '$defs', 'definitions']);

function readableOrder(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(readableOrder);
  if (schema === null || typeof schema !== 'object') return schema;
  const rank = (key: string) => (keywordOrder.includes(key) ? keywordOrder.indexOf(key) : keywordOrder.length);
  return Object.fromEntries(
    Object.entries(schema)
      .sort(([a], [b]) => rank(a) - rank(b))
      .map(([key, value]) => [
        key,
        // A map of names to schemas: keep the names as they are, order each schema's keywords.
        schemaMaps.has(key) && value && typeof value === 'object'
          ? Object.fromEntries(Object.entries(value).map(([name, sub]) => [name, readableOrder(sub)]))
          : readableOrder(value),
      ]),
  );
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}
