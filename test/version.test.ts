// src/version.ts is what workers register and `crier --version` prints: it must follow package.json.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { version } from '../src/version.ts';

test('src/version.ts says the version package.json says', () => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  assert.equal(version, pkg.version);
});
