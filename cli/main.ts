#!/usr/bin/env node
// The crier executable: runs the command named by argv (cli/run.ts) on this process's streams.
import { main } from './run.ts';

// Piped into `head`: a closed stdout ends the command quietly.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

const code = await main(process.argv.slice(2));
// The command is over, whatever the driver still holds open (a socket to a server that never
// answered, a query it was told to cancel): exit once what was written has been flushed.
process.exitCode = code;
process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
