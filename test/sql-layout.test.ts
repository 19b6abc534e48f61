// The layout of crier's SQL: every function, procedure, trigger and view of schema crier is defined
// exactly once in the tree, in db/sql, in a file migrate() applies; what db/sql defines is exactly
// what a migrated database has; and no run of six or more SQL lines is written twice.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { sqlFiles, sqlFolder } from '../src/migrate.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const generated = new Set(['db/schema.sql']);

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase('sql_layout');
});
after(async () => {
  await db.drop();
});

function walk(folder: string): string[] {
  return readdirSync(folder).flatMap((name) => {
    const path = `${folder}/${name}`;
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

/** The tracked source files of the tree (tests excluded: they define their own fixtures). */
function sourceFiles(): string[] {
  const tracked = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8' });
  return tracked
    .split('\n')
    .filter((f) => /\.(sql|ts)$/.test(f) && !f.startsWith('test/') && !generated.has(f))
    .filter((f) => {
      try {
        return statSync(`${root}/${f}`).isFile();
      } catch {
        return false; // deleted in the working tree
      }
    });
}

const routineOrView = /\bCREATE\s+(?:OR\s+REPLACE\s+)?(FUNCTION|PROCEDURE|VIEW)\s+"?crier"?\."?(\w+)/gi;
const trigger = /\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:CONSTRAINT\s+)?TRIGGER\s+"?(\w+)"?[^;]*?\bON\s+"?crier"?\./gi;

/** Every definition of an object of schema crier in the tree: "KIND name" -> the files defining it. */
function definitions(): Map<string, string[]> {
  const found = new Map<string, string[]>();
  const add = (key: string, file: string) => found.set(key, [...(found.get(key) ?? []), file]);
  for (const file of sourceFiles()) {
    const text = readFileSync(`${root}/${file}`, 'utf8');
    for (const m of text.matchAll(routineOrView)) add(`${m[1]!.toUpperCase() === 'VIEW' ? 'VIEW' : 'FUNCTION'} ${m[2]}`, file);
    for (const m of text.matchAll(trigger)) add(`TRIGGER ${m[1]}`, file);
  }
  return found;
}

test('db/sql holds exactly the files migrate() applies', () => {
  const onDisk = walk(sqlFolder()).map((f) => f.slice(sqlFolder().length + 1)).sort();
  const declared = [...sqlFiles.beforeTables, ...sqlFiles.afterTables];
  assert.equal(new Set(declared).size, declared.length, 'no file is declared twice');
  assert.deepEqual(onDisk, [...declared].sort());
});

test('every function, trigger and view of schema crier is defined exactly once in the tree, in db/sql', () => {
  const found = definitions();
  assert.ok(found.size > 60, `found ${found.size} definitions: the scan works`);
  const problems = [...found].filter(([, files]) => files.length !== 1 || !files[0]!.startsWith('db/sql/'));
  assert.deepEqual(problems.map(([key, files]) => `${key}: ${files.join(', ')}`), []);
});

test('what db/sql defines is exactly what a migrated database has', async () => {
  const defined = [...definitions().keys()].sort();
  const rows = await db.sql`
    SELECT 'FUNCTION ' || proname AS key FROM pg_proc WHERE pronamespace = 'crier'::regnamespace
    UNION SELECT 'TRIGGER ' || t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
      WHERE c.relnamespace = 'crier'::regnamespace AND NOT t.tgisinternal
    UNION SELECT 'VIEW ' || relname FROM pg_class WHERE relnamespace = 'crier'::regnamespace AND relkind = 'v'
    ORDER BY 1`;
  assert.deepEqual(rows.map((r) => r.key as string), defined);
});

test('no run of six or more SQL lines is written twice (db/sql and db/migrations)', () => {
  const files = sourceFiles().filter((f) => f.startsWith('db/') && f.endsWith('.sql'));
  assert.ok(files.length > 10);
  const seen = new Map<string, string>();
  const repeats: string[] = [];
  for (const file of files) {
    // Blank lines, comments and lone punctuation do not make code alike.
    const lines = readFileSync(`${root}/${file}`, 'utf8')
      .split('\n')
      .map((line, i) => ({ text: line.trim(), at: `${file}:${i + 1}` }))
      .filter((l) => l.text !== '' && !l.text.startsWith('--') && !/^[();,$]*$/.test(l.text));
    for (let i = 0; i + 6 <= lines.length; i++) {
      const run = lines.slice(i, i + 6).map((l) => l.text).join('\n');
      const first = seen.get(run);
      if (first === undefined) seen.set(run, lines[i]!.at);
      else repeats.push(`${lines[i]!.at} repeats ${first}`);
    }
  }
  assert.deepEqual(repeats, []);
});
