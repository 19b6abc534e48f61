#!/usr/bin/env node
// The crier executable: runs the command named by argv (cli/run.ts) on this process's streams.
import { main } from './run.ts';

// Piped into `head`: a closed stdout ends the command quietly.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

process.exitCode = await main(process.argv.slice(2));
