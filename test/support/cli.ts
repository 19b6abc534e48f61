// The crier command for tests: in-process (cli/run.ts's main() with recorded output: the same
// parsing, commands and exit codes as the binary, without a Node start-up per call) for most cases,
// and the built CLI (dist/cli/main.js) in a child process for what only a process has: its exit
// code, a piped stdin, signals. Shared by the test files that check commands end to end (cli, catalog).
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { main } from '../../cli/run.ts';

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

/** Runs `crier ...args` in this process against databaseUrl (as DATABASE_URL), with stdin `input`. */
export async function runCli(
  databaseUrl: string,
  args: string[],
  options: { input?: string; env?: Record<string, string | undefined> } = {},
): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, {
    stdout: (text) => void (stdout += text),
    stderr: (text) => void (stderr += text),
    env: { ...process.env, DATABASE_URL: databaseUrl, ...options.env },
    readStdin: () => options.input ?? '',
    signals: false,
  });
  return { code, stdout, stderr };
}

/** Runs the built `crier ...args` in a child process against databaseUrl, with stdin from `input`. */
export function spawnCli(
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
