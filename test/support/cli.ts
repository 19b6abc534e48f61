// The crier command as users run it: the built CLI (dist/cli/main.js) in a child process. Shared by
// the test files that check commands end to end (cli, catalog).
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
/** The built bin, for tests that drive a long-running command themselves. */
export const cli = `${root}dist/cli/main.js`;

/** Builds dist/ unless it is newer than every source file (npm test builds it in pretest). */
export function ensureBuilt(): void {
  const newest = (dir: string): number =>
    Math.max(0, ...readdirSync(dir, { withFileTypes: true }).map((entry) => {
      const path = `${dir}/${entry.name}`;
      return entry.isDirectory() ? newest(path) : statSync(path).mtimeMs;
    }));
  let built = 0;
  try {
    built = statSync(cli).mtimeMs;
  } catch {
    // not built yet
  }
  if (built < Math.max(newest(`${root}src`), newest(`${root}cli`))) {
    execFileSync(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '-p', `${root}tsconfig.build.json`], { stdio: 'inherit' });
  }
}

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `crier ...args` against databaseUrl (as DATABASE_URL), with stdin from `input`. */
export function runCli(
  databaseUrl: string,
  args: string[],
  options: { input?: string; env?: Record<string, string | undefined> } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], {
      // NODE_TEST_CONTEXT would make the child report to the test runner instead of running normally.
      env: { ...process.env, NODE_TEST_CONTEXT: undefined, DATABASE_URL: databaseUrl, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

/** Asserts a failure: the exit code, and one line on stderr matching `message`. */
export function assertFails(run: Run, code: 1 | 2, message: RegExp): void {
  assert.equal(run.code, code, `exit code (stderr: ${run.stderr})`);
  assert.match(run.stderr, message);
  assert.equal(run.stderr.trimEnd().split('\n').length, 1, `one line: ${run.stderr}`);
}
