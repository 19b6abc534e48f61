// The runner's side of cell.ts: fork a cell and wait for its answer.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { CellJob } from './cell.ts';
import type { CellResult } from './scenarios/scenario.ts';

export function runCell(job: CellJob, timeoutMs = 30 * 60_000): Promise<CellResult> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(new URL('./cell.ts', import.meta.url)), [JSON.stringify(job)], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, NODE_TEST_CONTEXT: undefined },
    });
    let answer: { type: string; result?: CellResult; message?: string } | undefined;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${job.contestant}/${job.scenario}: no result within ${timeoutMs}ms`));
    }, timeoutMs);
    child.on('message', (message: any) => (answer = message));
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (answer?.type === 'result') resolve(answer.result!);
      else reject(new Error(`${job.contestant}/${job.scenario} failed: ${answer?.message ?? `exit code ${code}`}`));
    });
  });
}
