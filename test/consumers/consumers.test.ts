// What users get: packs crier as publishing would (`npm pack`, which runs prepack: build and strip
// the repository-only fields), installs the tarball into empty projects in a temp folder, and
// runs a consumer's first program (migrate, publish inside a transaction, a worker handles the
// event) in each setup: ES modules and CommonJS on postgres.js 4.x, and on 3.x with Drizzle;
// TypeScript strict without skipLibCheck with moduleResolution node10, nodenext (ESM and CJS) and
// bundler, each type-checked and then run; a NestJS 11 application (CommonJS, node10, legacy
// decorators) with crier/nestjs; and the crier command from the package's bin.
//
// Run by `npm run test:consumers` (CI), not by `npm test`: packing rebuilds dist/, which the
// other test files use while they run. It needs the npm registry: without it the test is skipped
// with the reason, except in CI (CI=true), where it fails.
// CRIER_CONSUMER_NODES="/path/to/node22 /path/to/node24" runs every program under those Node
// binaries too (npm and tsc keep running on this one).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { requireAll } from '../support/required.ts';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));
const fixture = fileURLToPath(new URL('project', import.meta.url));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const devVersions = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).devDependencies as Record<string, string>;
const typescript = [`typescript@${devVersions.typescript}`, `@types/node@${devVersions['@types/node']}`];
const nodes = [process.execPath, ...(process.env.CRIER_CONSUMER_NODES ?? '').split(/\s+/).filter(Boolean)];

interface Program {
  name: string;
  /** The tsconfig that type-checks and compiles it first (strict, no skipLibCheck). */
  tsconfig?: string;
  /** The file node runs, relative to the project. */
  main: string;
  from: string;
}

interface Project {
  name: string;
  packages: string[];
  programs: Program[];
}

const projects: Project[] = [
  {
    // What the README's Install gives: `npm install crier postgres` (postgres 4.x).
    name: 'postgres4',
    packages: ['postgres@4.2.0', ...typescript],
    programs: [
      { name: 'esm', main: 'esm.mjs', from: 'esm' },
      { name: 'cjs', main: 'cjs.cjs', from: 'cjs' },
      { name: 'ts-node10', tsconfig: 'tsconfig.node10.json', main: 'out/node10/app.js', from: 'typescript' },
      { name: 'ts-nodenext-esm', tsconfig: 'tsconfig.nodenext.json', main: 'out/nodenext/app.mjs', from: 'typescript' },
      { name: 'ts-nodenext-cjs', tsconfig: 'tsconfig.nodenext.json', main: 'out/nodenext/app.cjs', from: 'typescript' },
      { name: 'ts-bundler', tsconfig: 'tsconfig.bundler.json', main: 'out/bundler/app.js', from: 'typescript' },
    ],
  },
  {
    // A team still on postgres.js 3.x, with Drizzle.
    name: 'postgres3',
    packages: ['postgres@3.4.10', 'drizzle-orm@0.45.4', ...typescript],
    programs: [
      { name: 'esm', main: 'esm.mjs', from: 'esm' },
      { name: 'cjs', main: 'cjs.cjs', from: 'cjs' },
      { name: 'ts-node10', tsconfig: 'tsconfig.node10.json', main: 'out/node10/app.js', from: 'typescript' },
      { name: 'ts-nodenext-esm', tsconfig: 'tsconfig.nodenext.json', main: 'out/nodenext/app.mjs', from: 'typescript' },
    ],
  },
  {
    // A NestJS 11 application (CommonJS, node10, legacy decorators: Nest's default setup).
    name: 'nestjs11',
    packages: ['postgres@4.2.0', '@nestjs/common@11.2.12', '@nestjs/core@11.2.12', 'reflect-metadata@0.2.2', 'rxjs@7.8.2', ...typescript],
    programs: [{ name: 'ts-nest-node10', tsconfig: 'tsconfig.nest.json', main: 'out/nest/nest.js', from: 'nestjs' }],
  },
];

/** Why the test cannot run here, or undefined. */
async function unreachableRegistry(): Promise<string | undefined> {
  try {
    await run(npm, ['view', 'postgres@4.2.0', 'version'], { timeout: 30_000 });
    return undefined;
  } catch (error) {
    return `the npm registry is unreachable (npm view postgres failed: ${String((error as Error).message).split('\n')[0]})`;
  }
}

const skip = await unreachableRegistry();
if (skip && requireAll) throw new Error(`consumer tests are required in CI, but ${skip}`);

describe('consumer projects from the packed tarball', { skip }, () => {
  let work: string;
  let tarball: string;
  let db: TestDatabase;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'crier-consumers-'));
    await run(npm, ['pack', '--pack-destination', work], { cwd: root, maxBuffer: 64 * 1024 * 1024 });
    tarball = join(work, readdirSync(work).find((file) => file.endsWith('.tgz'))!);
    db = await createTestDatabase('consumers', { migrate: false });
  });
  after(async () => {
    await db?.drop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('the tarball holds the builds, migrations, docs and LICENSE, and no repository-only fields', async () => {
    const { stdout } = await run('tar', ['-tzf', tarball]);
    const files = stdout.split('\n').filter(Boolean);
    for (const file of ['package/LICENSE', 'package/README.md', 'package/dist/src/index.js', 'package/dist/cjs/src/index.js', 'package/dist/cjs/package.json', 'package/dist/cli/main.js', 'package/db/sql/publish.sql']) {
      assert.ok(files.includes(file), `${file} is packed`);
    }
    assert.ok(files.some((file) => file.startsWith('package/docs/')), 'docs/ is packed (the README links into it)');
    assert.deepEqual(files.filter((file) => /^package\/(bench|test|src|scripts|examples|faults)\//.test(file)), []);
    const manifest = JSON.parse((await run('tar', ['-xzOf', tarball, 'package/package.json'])).stdout);
    assert.equal(manifest.workspaces, undefined);
    assert.equal(manifest.allowScripts, undefined);
    assert.equal(manifest.scripts.prepare, undefined, 'no install script for consumers');
    assert.deepEqual(manifest.dependencies ?? {}, {});
  });

  for (const project of projects) {
    describe(project.name, () => {
      let dir: string;
      const compiled = new Set<string>();
      before(async () => {
        dir = join(work, project.name);
        mkdirSync(join(dir, 'nodenext'), { recursive: true });
        for (const file of readdirSync(fixture)) copyFileSync(join(fixture, file), join(dir, file));
        copyFileSync(join(fixture, 'app.ts'), join(dir, 'nodenext/app.mts'));
        copyFileSync(join(fixture, 'app.ts'), join(dir, 'nodenext/app.cts'));
        writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `consumer-${project.name}`, private: true }));
        await run(npm, ['install', '--no-audit', '--no-fund', `crier@file:${tarball}`, ...project.packages], { cwd: dir, maxBuffer: 64 * 1024 * 1024 });
      });

      test('the crier command (bin): migrate, publish, events list', async () => {
        const crier = async (...args: string[]) =>
          (await run(join(dir, 'node_modules/.bin/crier'), args, { cwd: dir, env: { ...process.env, DATABASE_URL: db.url } }).catch((error) =>
            assert.fail(`crier ${args.join(' ')}:\n${error.stdout}${error.stderr}`),
          )).stdout;
        const topic = `consumer.${project.name}_cli`;
        await crier('migrate');
        await crier('publish', topic, '{"from":"cli"}');
        const listed = JSON.parse(await crier('events', 'list', '--topic', topic, '--json'));
        assert.deepEqual(listed.map((event: { topic: string }) => event.topic), [topic]);
      });

      for (const program of project.programs) {
        test(program.name, async () => {
          if (program.tsconfig && !compiled.has(program.tsconfig)) {
            compiled.add(program.tsconfig);
            await run(process.execPath, [join(dir, 'node_modules/typescript/bin/tsc'), '-p', program.tsconfig], { cwd: dir }).catch((error) => {
              assert.fail(`tsc -p ${program.tsconfig}:\n${error.stdout}${error.stderr}`);
            });
            if (program.tsconfig.includes('bundler')) writeFileSync(join(dir, 'out/bundler/package.json'), '{ "type": "module" }');
          }
          for (const node of nodes) {
            const consumer = `${project.name}_${program.name}_${nodes.indexOf(node)}`.replace(/-/g, '_');
            const { stdout } = await run(node, [program.main], {
              cwd: dir,
              timeout: 60_000,
              env: { ...process.env, DATABASE_URL: db.url, CONSUMER: consumer, NODE_TEST_CONTEXT: undefined },
            }).catch((error) => assert.fail(`${node} ${program.main}:\n${error.stdout}${error.stderr}`));
            const result = JSON.parse(stdout.trim().split('\n').at(-1)!);
            assert.deepEqual({ topic: result.topic, payload: result.payload }, { topic: `consumer.${consumer}`, payload: { from: program.from } }, `under ${node}`);
          }
        });
      }
    });
  }
});
