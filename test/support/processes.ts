// Child processes for tests: a worker in its own process, with its output collected and helpers to
// wait for a line or for the exit.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface Child {
  process: ChildProcess;
  output: () => string;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function spawnTs(script: string, env: Record<string, string | undefined>): Child {
  const path = fileURLToPath(new URL(`../${script}`, import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', path], {
    // NODE_TEST_CONTEXT would make the child report to the test runner instead of running normally.
    env: { ...process.env, NODE_TEST_CONTEXT: undefined, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const waiters: (() => void)[] = [];
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
    waiters.forEach((w) => w());
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    process: child,
    output: () => output,
    exited,
    waitFor(pattern, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (pattern.test(output)) {
            clearTimeout(timer);
            resolve();
          }
        };
        const timer = setTimeout(
          () => reject(new Error(`timed out waiting for ${pattern} in output of ${script}:\n${output}`)),
          timeoutMs,
        );
        waiters.push(check);
        check();
        void exited.then(() => {
          if (!pattern.test(output)) {
            clearTimeout(timer);
            reject(new Error(`${script} exited before printing ${pattern}:\n${output}`));
          }
        });
      });
    },
  };
}

/** The table test/fixtures/worker-process.ts records each handling in. */
export const handledTable = 'CREATE TABLE handled (event_id bigint, worker text, attempt int, at timestamptz DEFAULT clock_timestamp())';

/** Worker processes (test/fixtures/worker-process.ts) of one test file, all SIGKILLed by killAll(). */
export function workerProcesses(databaseUrl: () => string) {
  const children: Child[] = [];
  return {
    start(env: Record<string, string>): Child {
      const child = spawnTs('fixtures/worker-process.ts', { DATABASE_URL: databaseUrl(), ...env });
      children.push(child);
      return child;
    },
    killAll(): void {
      for (const child of children) child.process.kill('SIGKILL');
    },
  };
}
