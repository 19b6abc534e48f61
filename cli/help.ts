// Help text: one page per command (usage, options, examples), and the overview of all commands.
import { globalOptions, type Command, type OptionSpec } from './command.ts';

function optionLines(options: Record<string, OptionSpec>): string[] {
  const entries = Object.entries(options).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`;
    return [flag + (o.multiple ? ' ...' : ''), o.description] as const;
  });
  const width = Math.max(...entries.map(([flag]) => flag.length));
  return entries.map(([flag, text]) => `  ${flag.padEnd(width)}  ${text}`);
}

export function commandHelp(command: Command): string {
  const name = `crier ${command.path.join(' ')}`;
  const lines = [`${name}: ${command.summary}`, ''];
  lines.push(`Usage: ${name}${command.args ? ` ${command.args}` : ''}${Object.keys(command.options).length ? ' [options]' : ''}`);
  if (command.details) lines.push('', ...command.details.split('\n'));
  if (Object.keys(command.options).length > 0) lines.push('', 'Options:', ...optionLines(command.options));
  lines.push('', 'Global options:', ...optionLines(globalOptions));
  lines.push('', 'Examples:', ...command.examples.map((e) => `  ${e}`));
  return `${lines.join('\n')}\n`;
}

export function overview(commands: readonly Command[]): string {
  const rows = commands.map((c) => [`crier ${c.path.join(' ')}${c.args ? ` ${c.args}` : ''}`, c.summary] as const);
  const width = Math.max(...rows.map(([usage]) => usage.length));
  return [
    'crier: operate a crier event backbone (Postgres): status, workers, events, dead letters, requeue, replay, prune, catalog.',
    '',
    'Usage: crier <command> [options]',
    '',
    'Commands:',
    ...rows.map(([usage, summary]) => `  ${usage.padEnd(width)}  ${summary}`),
    '',
    'Global options:',
    ...optionLines(globalOptions),
    '',
    'Run "crier <command> --help" for a command\'s options and examples.',
    'Exit codes: 0 success, 1 failure (database, unknown name, refused), 2 usage error (bad arguments or input).',
    '',
  ].join('\n');
}

export function groupHelp(group: string, commands: readonly Command[]): string {
  return overview(commands.filter((c) => c.path[0] === group)).replace(/^crier: .*\n\n/, '');
}
