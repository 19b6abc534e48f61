// One cell: one contestant through one scenario in a fresh database, in its own process (forked by
// the runner). Reads its job from argv[2] (JSON), answers with { type: 'result' | 'error', ... }.
import { loadAdapter, type ContestantName, type Tuning } from './adapter.ts';
import { createDatabase, dropDatabase } from './database.ts';
import { scenarioByName } from './scenarios/index.ts';
import type { Scale } from './scenarios/scenario.ts';

export interface CellJob {
  contestant: ContestantName;
  scenario: string;
  serverUrl: string;
  scale: Scale;
  tuning: Tuning;
}

const job = JSON.parse(process.argv[2]!) as CellJob;
const reply = (message: object) =>
  new Promise<void>((resolve) => (process.send ? process.send(message, () => resolve()) : (console.log(JSON.stringify(message)), resolve())));

try {
  const adapter = await loadAdapter(job.contestant);
  const scenario = scenarioByName(job.scenario);
  const url = await createDatabase(job.serverUrl, `${job.contestant}_${job.scenario}`);
  try {
    const result = await scenario.run({
      contestant: job.contestant,
      adapter,
      url,
      serverUrl: job.serverUrl,
      scale: job.scale,
      tuning: job.tuning,
      log: (message) => console.log(`    ${job.contestant}/${job.scenario}: ${message}`),
    });
    await reply({ type: 'result', result });
  } finally {
    await dropDatabase(url).catch((error) => console.error(`could not drop ${url}: ${error}`));
  }
} catch (error) {
  await reply({ type: 'error', message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
}
process.exit(0);
