// A worker that uses neither a catalog, a Drizzle executor nor migrate() must not pay for zod and
// drizzle-orm (together ~25 MiB of RSS): importing crier loads neither. The catalog checks schemas
// with their own methods, so it keeps working without crier importing zod.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { CrierError, defineCatalog } from '../src/index.ts';
import { ensureBuilt } from './support/cli.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

/** The packages a fresh process loads while it imports `module` (a built file, as users import it). */
function packagesLoadedBy(module: string): string[] {
  const hook = `export async function resolve(s, c, next) { const r = await next(s, c); const m = /node_modules\\/((@[^/]+\\/)?[^/]+)/.exec(r.url); if (m) console.log(m[1]); return r; }`;
  const register = `import { register } from 'node:module'; register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}));`;
  const output = execFileSync(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(register)}`, '-e', `await import(${JSON.stringify(module)})`], {
    encoding: 'utf8',
    env: { ...process.env, NODE_TEST_CONTEXT: undefined },
  });
  return [...new Set(output.split('\n').filter(Boolean))].sort();
}

test('importing crier or crier/testing loads postgres only', () => {
  ensureBuilt();
  assert.deepEqual(packagesLoadedBy(`${root}dist/src/index.js`), ['postgres']);
  assert.deepEqual(packagesLoadedBy(`${root}dist/src/testing.js`), ['postgres']);
});

test('crier/opentelemetry loads @opentelemetry/api, the core never does', () => {
  ensureBuilt();
  assert.deepEqual(packagesLoadedBy(`${root}dist/src/integrations/opentelemetry.js`), ['@opentelemetry/api']);
});

test('defineCatalog checks schemas and builds their JSON Schemas without importing zod itself', () => {
  const schema = z.object({ orderId: z.string(), total: z.number().optional() });
  const catalog = defineCatalog({ 'order.created': { versions: [schema] } });
  assert.deepEqual(catalog.entry('order.created').jsonSchemas, [z.toJSONSchema(schema, { io: 'input' })]);
  const invalid = (detail: RegExp) => (error: unknown) => error instanceof CrierError && error.code === 'CRIER_INVALID_CATALOG' && detail.test(error.message);
  assert.throws(() => defineCatalog({ 'order.created': { versions: [{ parse: () => 1 } as never] } }), invalid(/v1 is not a zod schema/));
  assert.throws(() => defineCatalog({ 'order.created': { versions: [z.object({ at: z.date() })] } }), invalid(/cannot be represented as JSON/));
});
