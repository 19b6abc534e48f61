// crier.json_schema_errors (the SQL-side validator) against zod itself: for each schema, zod's
// JSON Schema is checked in Postgres on valid and invalid payloads, and SQL must accept exactly
// what zod accepts. This is the evidence that the plpgsql subset covers what zod emits.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { z } from 'zod';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase('catalog_sql');
});
after(async () => {
  await db.drop();
});

type Node = { name: string; children: Node[] };
const TreeNode: z.ZodType<Node> = z.object({
  name: z.string(),
  get children() {
    return z.array(TreeNode);
  },
});

const cases: { name: string; schema: z.ZodType; values: unknown[] }[] = [
  {
    name: 'scalars',
    schema: z.object({ s: z.string(), n: z.number(), i: z.int(), b: z.boolean(), nul: z.null() }),
    values: [
      { s: 'a', n: 1.5, i: 2, b: true, nul: null },
      { s: 1, n: 1.5, i: 2, b: true, nul: null },
      { s: 'a', n: '1', i: 2, b: true, nul: null },
      { s: 'a', n: 1, i: 2.5, b: true, nul: null },
      { s: 'a', n: 1, i: 2, b: 'true', nul: null },
      { s: 'a', n: 1, i: 2, b: false, nul: 0 },
      { s: 'a', n: 1, i: 2, b: false },
      [],
      'x',
      null,
    ],
  },
  {
    name: 'optional, nullable, default, extra keys',
    schema: z.object({ a: z.string().optional(), b: z.string().nullable(), c: z.number().default(3) }),
    values: [{ b: null }, { a: 'x', b: 'y', c: 1 }, { a: null, b: null }, { b: 'y', c: 'z' }, { a: 'x' }, { b: null, extra: 1 }],
  },
  {
    name: 'strict object',
    schema: z.strictObject({ a: z.string() }),
    values: [{ a: 'x' }, { a: 'x', b: 1 }, {}],
  },
  {
    name: 'string checks',
    schema: z.object({
      len: z.string().min(2).max(4),
      re: z.string().regex(/^[A-Z]{3}-\d+$/),
      email: z.email(),
      uuid: z.uuid(),
      at: z.iso.datetime(),
      day: z.iso.date(),
      lit: z.literal('fixed'),
      en: z.enum(['red', 'green']),
    }),
    values: [
      { len: 'ab', re: 'ABC-12', email: 'a.b@example.com', uuid: '0f8fad5b-d9cb-469f-a165-70867728950e', at: '2026-11-26T09:00:00Z', day: '2026-02-28', lit: 'fixed', en: 'red' },
      { len: 'a', re: 'ABC-12', email: 'a.b@example.com', uuid: '0f8fad5b-d9cb-469f-a165-70867728950e', at: '2026-11-26T09:00:00Z', day: '2026-02-28', lit: 'fixed', en: 'red' },
      { len: 'abcde', re: 'ABC-12', email: 'a.b@example.com', uuid: '0f8fad5b-d9cb-469f-a165-70867728950e', at: '2026-11-26T09:00:00Z', day: '2026-02-28', lit: 'fixed', en: 'red' },
      { len: 'ab', re: 'abc-12', email: 'a.b@example.com', uuid: '0f8fad5b-d9cb-469f-a165-70867728950e', at: '2026-11-26T09:00:00Z', day: '2026-02-28', lit: 'fixed', en: 'red' },
      { len: 'ab', re: 'ABC-12', email: 'not an email', uuid: '0f8fad5b-d9cb-469f-a165-70867728950e', at: '2026-11-26T09:00:00Z', day: '2026-02-28', lit: 'fixed', en: 'red' },
      { len: 'ab', re: 'ABC-12', email: 'a.b@example.com', uuid: '0f8fad5b', at: '2026-11-26T09:00:00Z', day: '2026-02-28', lit: 'fixed', en: 'red' },
      { len: 'ab', re: 'ABC-12', email: 'a.b@example.com', uuid: '0f8fad5b-d9cb-469f-a165-70867728950e', at: '2026-11-26 09:00', day: '2026-02-28', lit: 'fixed', en: 'red' },
      { len: 'ab', re: 'ABC-12', email: 'a.b@example.com', uuid: '0f8fad5b-d9cb-469f-a165-70867728950e', at: '2026-11-26T09:00:00Z', day: '2026-02-30', lit: 'fixed', en: 'red' },
      { len: 'ab', re: 'ABC-12', email: 'a.b@example.com', uuid: '0f8fad5b-d9cb-469f-a165-70867728950e', at: '2026-11-26T09:00:00Z', day: '2026-02-28', lit: 'other', en: 'red' },
      { len: 'ab', re: 'ABC-12', email: 'a.b@example.com', uuid: '0f8fad5b-d9cb-469f-a165-70867728950e', at: '2026-11-26T09:00:00Z', day: '2026-02-28', lit: 'fixed', en: 'blue' },
    ],
  },
  {
    name: 'number checks',
    schema: z.object({ pos: z.number().positive(), range: z.int().min(1).max(10), cents: z.number().multipleOf(0.01), lt: z.number().lt(5) }),
    values: [
      { pos: 0.1, range: 1, cents: 12.34, lt: 4.99 },
      { pos: 0, range: 1, cents: 12.34, lt: 4.99 },
      { pos: 1, range: 0, cents: 12.34, lt: 4.99 },
      { pos: 1, range: 11, cents: 12.34, lt: 4.99 },
      { pos: 1, range: 5, cents: 12.345, lt: 4.99 },
      { pos: 1, range: 5, cents: 12, lt: 5 },
    ],
  },
  {
    name: 'arrays and tuples',
    schema: z.object({ tags: z.array(z.string().min(1)).min(1).max(3), pair: z.tuple([z.string(), z.number()]) }),
    values: [
      { tags: ['a'], pair: ['x', 1] },
      { tags: [], pair: ['x', 1] },
      { tags: ['a', 'b', 'c', 'd'], pair: ['x', 1] },
      { tags: ['a', ''], pair: ['x', 1] },
      { tags: ['a'], pair: ['x'] },
      { tags: ['a'], pair: ['x', 1, 2] },
      { tags: ['a'], pair: [1, 'x'] },
      { tags: 'a', pair: ['x', 1] },
    ],
  },
  {
    name: 'records',
    schema: z.record(z.string().regex(/^[a-z]+$/), z.number()),
    values: [{}, { a: 1, bc: 2 }, { a: '1' }, { A: 1 }],
  },
  {
    name: 'unions',
    schema: z.object({
      u: z.union([z.string(), z.number()]),
      du: z.discriminatedUnion('kind', [
        z.object({ kind: z.literal('card'), last4: z.string().length(4) }),
        z.object({ kind: z.literal('iban'), iban: z.string() }),
      ]),
    }),
    values: [
      { u: 'x', du: { kind: 'card', last4: '1234' } },
      { u: 1, du: { kind: 'iban', iban: 'DE00' } },
      { u: true, du: { kind: 'iban', iban: 'DE00' } },
      { u: 1, du: { kind: 'card', last4: '12' } },
      { u: 1, du: { kind: 'cash' } },
      { u: 1, du: { kind: 'card', iban: 'DE00' } },
    ],
  },
  {
    name: 'nested and recursive',
    schema: z.object({ root: TreeNode, meta: z.object({ owner: z.object({ id: z.string() }) }) }),
    values: [
      { root: { name: 'a', children: [{ name: 'b', children: [] }] }, meta: { owner: { id: 'x' } } },
      { root: { name: 'a', children: [{ name: 2, children: [] }] }, meta: { owner: { id: 'x' } } },
      { root: { name: 'a', children: [{ name: 'b' }] }, meta: { owner: { id: 'x' } } },
      { root: { name: 'a', children: [] }, meta: { owner: {} } },
    ],
  },
  {
    name: 'intersection',
    schema: z.intersection(z.object({ a: z.string() }), z.object({ b: z.number() })),
    values: [{ a: 'x', b: 1 }, { a: 'x' }, { b: 1 }, { a: 1, b: 1 }],
  },
];

for (const { name, schema, values } of cases) {
  test(`SQL accepts exactly what zod accepts: ${name}`, async () => {
    const jsonSchema = z.toJSONSchema(schema, { io: 'input' });
    const [unchecked] = await db.sql`SELECT crier.json_schema_unchecked_patterns(${JSON.stringify(jsonSchema)}::text::jsonb) AS p`;
    assert.deepEqual(unchecked!.p, [], 'every pattern of this schema is checkable in Postgres');
    const rows = await db.sql<{ i: number; errors: string[] }[]>`
      SELECT v.i::int, crier.json_schema_errors(${JSON.stringify(jsonSchema)}::text::jsonb, v.value) AS errors
      FROM jsonb_array_elements(${JSON.stringify(values)}::text::jsonb) WITH ORDINALITY AS v(value, i)
      ORDER BY v.i`;
    assert.equal(rows.length, values.length);
    for (const row of rows) {
      const value = values[row.i - 1];
      const zod = schema.safeParse(value);
      assert.equal(
        row.errors.length === 0,
        zod.success,
        `value ${JSON.stringify(value)}: zod ${zod.success ? 'accepts' : `rejects (${zod.error!.issues.map((i) => i.message).join('; ')})`}, SQL ${row.errors.length === 0 ? 'accepts' : `rejects (${row.errors.join('; ')})`}`,
      );
    }
  });
}

test('error messages name the path and the rule', async () => {
  const jsonSchema = z.toJSONSchema(
    z.object({ items: z.array(z.object({ sku: z.string().min(3), qty: z.int().positive() })).min(1), note: z.string().optional() }),
    { io: 'input' },
  );
  const [row] = await db.sql`
    SELECT crier.json_schema_errors(${JSON.stringify(jsonSchema)}::text::jsonb,
                                    '{"items": [{"sku": "ab", "qty": 0}, {"qty": 1.5}], "note": 3}') AS errors`;
  // Properties come in jsonb's key order (shorter keys first).
  assert.deepEqual(row!.errors, [
    'note: expected string, got number',
    'items[0].qty: must be > 0',
    'items[0].sku: must have at least 3 characters',
    'items[1].sku: required',
    'items[1].qty: expected integer, got a fraction',
  ]);
});

test('patterns Postgres cannot check faithfully are listed and skipped, not misapplied', async () => {
  const jsonSchema = z.toJSONSchema(
    z.object({ word: z.string().regex(/\bcat\b/), letters: z.string().regex(/^\p{L}+$/u), plain: z.string().regex(/^[a-z]+$/) }),
    { io: 'input' },
  );
  const [row] = await db.sql`
    SELECT crier.json_schema_unchecked_patterns(s) AS unchecked,
           crier.json_schema_errors(s, '{"word": "a cat", "letters": "äb", "plain": "ABC"}', crier.json_schema_unchecked_patterns(s)) AS errors
    FROM (SELECT ${JSON.stringify(jsonSchema)}::text::jsonb AS s) x`;
  assert.deepEqual(row!.unchecked, ['\\bcat\\b', '^\\p{L}+$']);
  assert.deepEqual(row!.errors, ['plain: must match the pattern ^[a-z]+$']);
});
