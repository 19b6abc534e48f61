// A logger is anything with info/warn/error. The default writes one line per message to stderr.
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export const consoleLogger: Logger = {
  info: (m) => console.error(`[crier] ${m}`),
  warn: (m) => console.error(`[crier] warning: ${m}`),
  error: (m) => console.error(`[crier] error: ${m}`),
};

export const silentLogger: Logger = { info() {}, warn() {}, error() {} };

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
