// The crier command: finds the command named by the first words, parses its options, runs it over
// the admin API (src/admin) and maps the outcome to an exit code: 0 success, 1 failure (database,
// unknown name, refused), 2 usage error (bad arguments or bad input). Errors are one line on stderr.
// It never touches the process itself (streams, environment, signals) except through `io`, so the
// tests run it in-process; cli/main.ts is the executable around it.
import { readFileSync } from 'node:fs';
import { CrierError, quote, type CrierErrorCode } from '../src/errors.ts';
import { closest } from '../src/suggest.ts';
import { version } from '../src/version.ts';
import { checkPositionals, makeInput, parseCommandArgs, UsageError, type Command, type CommandInput } from './command.ts';
import { commands } from './commands/index.ts';
import { commandHelp, groupHelp, overview } from './help.ts';
import { createOutput, type Io } from './output.ts';
import type { Session } from './session.ts';

export type { Io } from './output.ts';

/** The real process: its streams, environment and stdin, and SIGINT/SIGTERM cancel the command. */
export const processIo: Io = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
  env: process.env,
  readStdin: () => readFileSync(0, 'utf8'),
  signals: true,
};

/** Codes that mean the input was wrong (exit 2), as opposed to the world being wrong (exit 1). */
const inputErrors = new Set<CrierErrorCode>([
  'CRIER_INVALID_OPTION', 'CRIER_INVALID_TOPIC', 'CRIER_INVALID_PATTERN', 'CRIER_INVALID_PAYLOAD',
  'CRIER_INVALID_HEADERS', 'CRIER_INVALID_KEY', 'CRIER_TOPIC_TOO_LONG', 'CRIER_KEY_TOO_LONG',
  'CRIER_IDEMPOTENCY_KEY_TOO_LONG', 'CRIER_HEADER_TOO_LONG',
]);

const groups = new Set(commands.filter((c) => c.path.length > 1).map((c) => c.path[0]!));

/** Finds the command in argv; returns it with the remaining arguments. */
function findCommand(argv: string[]): { command?: Command; rest: string[]; group?: string } {
  // Global options may come before the command: skip them (and the values of those that take one).
  const leading: string[] = [];
  let i = 0;
  while (i < argv.length && argv[i]!.startsWith('-')) {
    const arg = argv[i++]!;
    leading.push(arg);
    if ((arg === '--database-url' || arg === '--schema' || arg === '--statement-timeout') && i < argv.length) leading.push(argv[i++]!);
  }
  const first = argv[i];
  if (first === undefined) return { rest: leading };
  if (groups.has(first)) {
    const second = argv[i + 1];
    const command = commands.find((c) => c.path[0] === first && c.path[1] === second);
    if (!command) return { group: first, rest: [...leading, ...argv.slice(i + 1)] };
    return { command, rest: [...leading, ...argv.slice(i + 2)] };
  }
  const command = commands.find((c) => c.path.length === 1 && c.path[0] === first);
  if (!command) throw unknownCommand(first, [...new Set(commands.map((c) => c.path[0]!))]);
  return { command, rest: [...leading, ...argv.slice(i + 1)] };
}

/** "unknown command", with the nearest command name when one is close (the --help pointer follows). */
function unknownCommand(word: string, names: string[]): UsageError {
  const near = closest(word, names);
  return new UsageError(`unknown command ${quote(word)}${near ? `; did you mean ${JSON.stringify(near)}?` : ''}`);
}

/** What a signal's exit code is by shell convention: 128 + its number. */
const signalExit = { SIGINT: 130, SIGTERM: 143 } as const;

export async function main(argv: string[], io: Io = processIo): Promise<number> {
  const json = argv.includes('--json');
  let commandName = 'crier';
  const controller = new AbortController();
  let session: Session | undefined;
  let interrupt: (signal: 'SIGINT' | 'SIGTERM') => void = () => {};
  let signalled = false;
  // The first signal: a command that runs until one stops by itself (controller.signal); any other
  // is interrupted: its running queries cancelled on the server, then exit 130/143. A second
  // signal exits at once.
  const interrupted = new Promise<number>((resolve) => {
    interrupt = (signal) => {
      signalled = true;
      const done = () => resolve(signalExit[signal]);
      if (session) void session.cancel(1500).then(done);
      else done();
    };
  });
  let runsUntilSignal = false;
  const onSignal = (signal: 'SIGINT' | 'SIGTERM') => {
    if (controller.signal.aborted) {
      io.stderr(`${commandName}: ${signal} again: exiting now\n`);
      process.exit(signalExit[signal]);
    }
    controller.abort();
    if (!runsUntilSignal) interrupt(signal);
  };
  if (io.signals) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  let close: ((quick?: boolean) => Promise<void>) | undefined;
  let abandoned = false;
  try {
    if (argv[0] === 'help') return main([...argv.slice(1), '--help'], io);
    if (argv.includes('--version')) {
      io.stdout(`crier ${version}\n`);
      return 0;
    }
    const found = findCommand(argv);
    const wantsHelp = argv.includes('--help') || argv.includes('-h');
    if (!found.command) {
      if (found.group) {
        const sub = found.rest.find((a) => !a.startsWith('-'));
        if (wantsHelp && sub === undefined) {
          io.stdout(groupHelp(found.group, commands));
          return 0;
        }
        commandName = `crier ${found.group}`;
        throw new UsageError(
          sub === undefined
            ? `which one? ${commands.filter((c) => c.path[0] === found.group).map((c) => c.path[1]).join(', ')}`
            : unknownCommand(sub, commands.filter((c) => c.path[0] === found.group).map((c) => c.path[1]!)).message,
        );
      }
      if (wantsHelp) {
        io.stdout(overview(commands));
        return 0;
      }
      io.stderr(overview(commands));
      return 2;
    }
    const command = found.command;
    commandName = `crier ${command.path.join(' ')}`;
    const { values, positionals } = parseCommandArgs(command, found.rest);
    if (values.help) {
      io.stdout(commandHelp(command));
      return 0;
    }
    checkPositionals(command, positionals);
    runsUntilSignal = command.runsUntilSignal === true;
    // The session's startup deadline fails the command, whatever its own queries are waiting for.
    let failStartup: (error: unknown) => void = () => {};
    const startupFailed = new Promise<never>((_, reject) => (failStartup = reject));
    startupFailed.catch(() => {}); // a probe that fails after the command did is nobody's business
    const made = makeInput(values as CommandInput['values'], positionals, createOutput(values.json === true, io), controller.signal, io, (opened) => {
      session = opened;
      opened.started.catch(failStartup);
    });
    close = made.close;
    const outcome = command.run(made.input);
    outcome.catch(() => {}); // when the deadline or a signal ends the command first
    // Once interrupted, what the command does next (its cancelled query failing, say) is moot.
    const code = await Promise.race([outcome, startupFailed, interrupted]).catch((error: unknown) => {
      if (signalled) return undefined;
      throw error;
    });
    if (signalled) {
      const exit = await interrupted;
      abandoned = true;
      io.stderr(`${commandName}: interrupted${session ? '; its running query was cancelled on the server' : ''}\n`);
      return exit;
    }
    return typeof code === 'number' ? code : 0;
  } catch (error) {
    abandoned = true;
    return report(error, commandName, json, io);
  } finally {
    if (io.signals) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    session?.dispose();
    await close?.(abandoned).catch(() => {});
  }
}

function report(error: unknown, commandName: string, json: boolean, io: Io): number {
  let code = 1;
  let message: string;
  let errorCode = 'CRIER_ERROR';
  if (error instanceof UsageError) {
    code = 2;
    errorCode = 'CRIER_USAGE';
    message = `${error.message} (run "${commandName} --help" for usage)`;
  } else if (error instanceof CrierError) {
    code = inputErrors.has(error.code) ? 2 : 1;
    errorCode = error.code;
    message = error.detail;
  } else {
    message = error instanceof Error ? error.message : String(error);
  }
  message = message.replace(/\s*\n\s*/g, ' ');
  // People read "crier status: CRIER_CONNECTION: ..."; programs get the code and the message apart.
  const prefix = errorCode === 'CRIER_ERROR' || errorCode === 'CRIER_USAGE' ? '' : `${errorCode}: `;
  io.stderr(json ? `${JSON.stringify({ error: { code: errorCode, command: commandName, message } })}\n` : `${commandName}: ${prefix}${message}\n`);
  return code;
}
