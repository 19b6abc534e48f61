// crier migrate: apply crier's migrations to the database and schema.
import { migrate } from '../../src/migrate.ts';
import type { Command } from '../command.ts';
import { printJson } from '../output.ts';

export const migrateCommand: Command = {
  path: ['migrate'],
  summary: 'apply crier\'s migrations (safe to run twice, or from two processes at once)',
  options: {},
  examples: ['crier migrate', 'crier migrate --database-url postgres://app@db/app --schema tenant_a'],
  async run({ databaseUrl, global, out }) {
    const result = await migrate({ connection: databaseUrl(), schema: global.schema });
    if (out.json) return printJson(out, result);
    if (result.applied.length === 0) out.write(`schema ${result.schema} is up to date: nothing to apply\n`);
    else {
      out.write(`applied ${result.applied.length} migration${result.applied.length === 1 ? '' : 's'} to schema ${result.schema}:\n`);
      for (const name of result.applied) out.write(`  ${name}\n`);
    }
  },
};
