// Which postgres.js major the fault suite and the soak run on, for the whole process tree.
//
//   npm run test:faults -- --driver 3      npm run soak -- --driver 3      (default: 4)
//
// The package.json scripts load this file with --import, before the entry point (a hook registered
// later would miss the entry point's static imports). With --driver 3 on the command line, or
// CRIER_TEST_DRIVER=3 in the environment (how child processes inherit the choice), it registers
// driver-hooks.mjs, which resolves the bare specifier 'postgres' (crier's src/connection.ts, the
// harness, workers, producers) to the devDependency 'postgres-3' (npm:postgres@3.4.x). It puts
// itself into NODE_OPTIONS, so every process started from here (workers, producers, their children)
// loads it too. Each process prints the postgres.js it resolved and exits 2 when that is not the
// major asked for: a run's output proves which driver it used.
import { readFileSync } from 'node:fs';
import { register } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

function fromArgv() {
  const args = process.argv.slice(2);
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--driver') return args[i + 1] ?? '';
    if (args[i].startsWith('--driver=')) return args[i].slice('--driver='.length);
  }
  return undefined;
}

const major = fromArgv() ?? process.env.CRIER_TEST_DRIVER ?? '4';
if (major !== '3' && major !== '4') {
  console.error(`--driver takes 3 or 4 (the postgres.js major), not "${major}"`);
  process.exit(2);
}
if (major === '3') register('./driver-hooks.mjs', import.meta.url);

process.env.CRIER_TEST_DRIVER = major;
const self = `--import=${import.meta.url}`;
if (!(process.env.NODE_OPTIONS ?? '').includes(self)) {
  process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} ${self}`.trim();
}

// What 'postgres' resolves to here, through the hook: the package folder and its version.
const { dir, version } = packageOf(fileURLToPath(import.meta.resolve('postgres')));
process.env.CRIER_TEST_DRIVER_VERSION = version;
const where = relative(process.cwd(), dir) || dir;
console.error(`postgres.js ${version} (${where}) in ${process.argv[1] ? relative(process.cwd(), process.argv[1]) : 'node'} [pid ${process.pid}]`);
if (version.split('.')[0] !== major) {
  console.error(`--driver ${major} asked for postgres.js ${major}.x, but 'postgres' resolved to ${version} in ${dir}`);
  process.exit(2);
}

/** The folder and version of the postgres package a resolved file belongs to. */
function packageOf(file) {
  for (let dir = dirname(file); dirname(dir) !== dir; dir = dirname(dir)) {
    let manifest;
    try {
      manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    } catch {
      continue;
    }
    if (manifest.name === 'postgres') return { dir, version: manifest.version };
  }
  throw new Error(`faults/driver.mjs: no postgres package.json above ${file}`);
}
