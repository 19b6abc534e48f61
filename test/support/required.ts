// Tests that need something besides Node and a Postgres (pgbouncer, pg_dump) skip with a visible
// reason where it is missing, so `npm test` passes on a fresh machine; in CI (CI=true, which .ci/run
// and hosted CI services set) a missing requirement fails instead of skipping.
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export const requireAll = process.env.CI !== undefined && !['', '0', 'false'].includes(process.env.CI);

/** The path of an executable on PATH (or in the sbin folders), or undefined. */
export function findExecutable(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin'];
  return dirs.filter(Boolean).map((dir) => join(dir, name)).find((path) => existsSync(path));
}

/**
 * The skip reason for tests that need `name`, or undefined when it is installed or required
 * (in CI the tests then run and fail on the missing binary, saying how to install it).
 */
export function skipWithout(name: string, install: string): string | undefined {
  if (findExecutable(name) || requireAll) return undefined;
  return `${name} is not installed: ${install} to run these tests (CI requires them)`;
}
