// Broker clients are optional peer dependencies: loaded here, on first use of a relay or bridge,
// never by crier's core. A missing one is a clear error naming the package to install.
import { CrierError } from '../errors.ts';

export async function loadPeer<T>(name: string, load: () => Promise<T>, forWhat: string): Promise<T> {
  try {
    return await load();
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new CrierError('CRIER_MISSING_PEER', `${forWhat} needs the package "${name}": npm install ${name}`, { cause: error });
    }
    throw error;
  }
}

/** An error from a broker, named after the target, keeping the broker's own message (it becomes last_error). */
export function brokerError(where: string, error: unknown): CrierError {
  if (error instanceof CrierError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new CrierError('CRIER_BROKER', `${where}: ${message}`, { cause: error });
}
