// `npm pack` / `npm publish` ship package.json as it is on disk after `prepack`. Two fields only
// mean something in this repository (the bench workspace and the install-script allowlist for
// crier's own dev dependencies): `strip` sets package.json aside and writes it without them;
// `restore` (postpack) puts the original back. A dependency's copies would be ignored by npm, but
// they say things about crier's package that are not true for its users.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

const [command] = process.argv.slice(2);
const manifest = 'package.json';
const aside = '.package.dev.json';

if (command === 'strip') {
  if (existsSync(aside)) throw new Error(`${aside} exists: an earlier pack did not finish; restore it with 'node scripts/pack-manifest.mjs restore'`);
  const text = readFileSync(manifest, 'utf8');
  const { workspaces, allowScripts, ...shipped } = JSON.parse(text);
  writeFileSync(aside, text);
  writeFileSync(manifest, `${JSON.stringify(shipped, null, 2)}\n`);
} else if (command === 'restore') {
  if (existsSync(aside)) renameSync(aside, manifest);
} else {
  throw new Error('usage: node scripts/pack-manifest.mjs strip|restore');
}
