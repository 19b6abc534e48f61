// The cell's side of worker-process.ts: start a contestant's worker in a child process, follow its
// progress, stop it and collect its figures.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ContestantName, Layout, Tuning } from './adapter.ts';

export interface WorkerReport {
  handled: number;
  peakRssMiB: number;
  starts: [number, number][];
}

export class WorkerHandle {
  handled = 0;
  private readonly child: ChildProcess;
  private waiters: (() => void)[] = [];
  private failure: Error | undefined;
  private readonly messages: Record<string, (message: any) => void> = {};
  private isLoaded = false;

  /** `appName`: the application_name of the worker's connections (PGAPPNAME: postgres.js and pg both read it), to count them. */
  constructor({ appName }: { appName?: string } = {}) {
    this.child = fork(fileURLToPath(new URL('./worker-process.ts', import.meta.url)), {
      // BENCH_CPU_PROF=<dir> writes a V8 CPU profile of each worker process there (for profiling).
      execArgv: ['--import', 'tsx', ...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [])],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, NODE_TEST_CONTEXT: undefined, ...(appName === undefined ? {} : { PGAPPNAME: appName }) },
    });
    this.child.on('message', (message: any) => {
      if (message.type === 'progress') this.handled = message.handled;
      if (message.type === 'loaded') this.isLoaded = true;
      if (message.type === 'error') this.failure = new Error(`worker process failed: ${message.message}`);
      this.messages[message.type]?.(message);
      this.waiters.forEach((w) => w());
    });
    this.child.on('exit', (code) => {
      if (code !== 0 && code !== null) this.failure ??= new Error(`worker process exited with code ${code}`);
      this.waiters.forEach((w) => w());
    });
  }

  private next(type: string, timeoutMs: number): Promise<any> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`worker process: no "${type}" within ${timeoutMs}ms`)), timeoutMs);
      this.messages[type] = (message) => {
        clearTimeout(timer);
        delete this.messages[type];
        resolve(message);
      };
      this.waiters.push(() => {
        if (this.failure) {
          clearTimeout(timer);
          reject(this.failure);
        }
      });
    });
  }

  /** Resolves once the child has loaded its code (before anything is timed). */
  loaded(): Promise<void> {
    return this.isLoaded ? Promise.resolve() : this.next('loaded', 60_000);
  }

  start(contestant: ContestantName, url: string, layout: Layout, tuning: Tuning, record = false): Promise<void> {
    const ready = this.next('ready', 60_000);
    this.child.send({ type: 'start', contestant, url, layout, tuning, record });
    return ready;
  }

  /** Waits until the worker has handled at least `n` deliveries. */
  waitHandled(n: number, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const deadline = setTimeout(() => {
        reject(new Error(`worker handled ${this.handled} of ${n} deliveries within ${timeoutMs}ms`));
      }, timeoutMs);
      const check = () => {
        if (this.failure) {
          clearTimeout(deadline);
          reject(this.failure);
        } else if (this.handled >= n) {
          clearTimeout(deadline);
          this.waiters = this.waiters.filter((w) => w !== check);
          resolve();
        }
      };
      this.waiters.push(check);
      check();
    });
  }

  async stop(): Promise<WorkerReport> {
    const stopped = this.next('stopped', 30_000);
    this.child.send({ type: 'stop' });
    const report = (await stopped) as WorkerReport;
    this.handled = report.handled;
    return report;
  }

  kill(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}
