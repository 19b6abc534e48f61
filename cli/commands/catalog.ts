// crier catalog list | show | validation | unknown-topics: the registered event catalog
// (docs/catalog.md), read and switched by operators. registerCatalog in TypeScript stores it; this
// never registers or removes a topic.
import { quote } from '../../src/errors.ts';
import type { CatalogListRow } from '../../src/catalog/registry.ts';
import { UsageError, type Command } from '../command.ts';
import { printJson, printJsonArray, printTable, time } from '../output.ts';

export const catalogListCommand: Command = {
  path: ['catalog', 'list'],
  summary: 'registered topics: latest version, versions, SQL validation, description',
  details:
    'Ends with whether inserts must name a registered topic (crier catalog unknown-topics).\n' +
    '--json prints the topics as a JSON array; the unknown-topics setting then goes to stderr.',
  options: {},
  examples: ['crier catalog list', 'crier catalog list --json | jq -r \'.[] | select(.validate) | .topic\''],
  async run({ admin, out }) {
    const rows = await admin().listCatalog();
    const { rejectUnknownTopics } = await admin().catalogSettings();
    if (out.json) await printJsonArray(out, rows);
    else if (rows.length === 0) out.note('no catalog registered (registerCatalog from TypeScript stores one)');
    else {
      await printTable<CatalogListRow>(out, [
        { header: 'TOPIC', value: (r) => r.topic },
        { header: 'LATEST', value: (r) => `v${r.latestVersion}` },
        { header: 'VERSIONS', value: (r) => r.versions.map((v) => `v${v}`).join(',') },
        { header: 'SQL VALIDATION', value: (r) => (r.validate ? 'on' : 'off') },
        { header: 'DESCRIPTION', value: (r) => r.description ?? '' },
      ], rows);
    }
    out.note(
      rejectUnknownTopics
        ? 'unknown topics: rejected (inserts must name a registered topic)'
        : 'unknown topics: allowed (crier catalog unknown-topics reject turns that off)',
    );
  },
};

export const catalogShowCommand: Command = {
  path: ['catalog', 'show'],
  summary: 'one registered topic with every version\'s JSON Schema, latest first',
  args: '<topic>',
  positionals: [1, 1],
  options: {},
  examples: ['crier catalog show order.created', 'crier catalog show order.created --json | jq \'.versionDetails[-1].jsonSchema\''],
  async run({ admin, positionals, out }) {
    const entry = await admin().showCatalogEntry(positionals[0]!);
    if (out.json) return printJson(out, entry);
    const lines = [
      `topic           ${entry.topic}`,
      ...(entry.description ? [`description     ${entry.description}`] : []),
      `latest version  v${entry.latestVersion} (new events are published with it; older ones are upcast when read)`,
      `SQL validation  ${entry.validate ? 'on (inserts into crier.events are checked)' : 'off'}`,
      `registered      ${time(entry.registeredAt)}, updated ${time(entry.updatedAt)}`,
    ];
    for (const version of [...entry.versionDetails].reverse()) {
      lines.push('', `v${version.version} JSON Schema:`, JSON.stringify(readableOrder(version.jsonSchema), null, 2));
      if (version.uncheckedPatterns.length > 0) {
        lines.push(`not checked in SQL (ECMAScript-only regex): ${version.uncheckedPatterns.join('  ')}`);
      }
    }
    out.write(`${lines.join('\n')}\n`);
  },
};

export const catalogValidationCommand: Command = {
  path: ['catalog', 'validation'],
  summary: 'turn SQL-side validation of one registered topic on or off',
  args: '<topic> on|off',
  positionals: [2, 2],
  details:
    'On: every insert into crier.events for this topic (from SQL too) is checked against its latest\n' +
    'registered JSON Schema, and a bad payload is refused. Only new inserts are checked.',
  options: {},
  examples: ['crier catalog validation order.created on', 'crier catalog validation order.created off'],
  async run({ admin, positionals, out }) {
    const [topic, switchTo] = positionals as [string, string];
    if (switchTo !== 'on' && switchTo !== 'off') throw new UsageError(`expected on or off, got ${quote(switchTo)}`);
    await admin().setCatalogValidation(topic, switchTo === 'on');
    if (out.json) return printJson(out, { topic, validate: switchTo === 'on' });
    out.write(`SQL validation of ${topic} is ${switchTo}\n`);
  },
};

export const catalogUnknownTopicsCommand: Command = {
  path: ['catalog', 'unknown-topics'],
  summary: 'reject or allow inserts whose topic is not in the registered catalog',
  args: 'reject|allow',
  positionals: [1, 1],
  details: 'Turn rejection on once every producer\'s topics are registered: from then on a typo is an error, not a new topic.',
  options: {},
  examples: ['crier catalog unknown-topics reject', 'crier catalog unknown-topics allow'],
  async run({ admin, positionals, out }) {
    const choice = positionals[0]!;
    if (choice !== 'reject' && choice !== 'allow') throw new UsageError(`expected reject or allow, got ${quote(choice)}`);
    await admin().setRejectUnknownTopics(choice === 'reject');
    if (out.json) return printJson(out, { rejectUnknownTopics: choice === 'reject' });
    out.write(`unknown topics are now ${choice === 'reject' ? 'rejected' : 'allowed'}\n`);
  },
};

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
