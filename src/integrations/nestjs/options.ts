// What CrierModule is configured with, and the injection token of its options. Nest's types only:
// importing this loads nothing of Nest.
import type { FactoryProvider, ModuleMetadata } from '@nestjs/common';
import type { Connection } from '../../connection.ts';
import type { Instrumentation } from '../../instrumentation.ts';
import type { Logger } from '../../logger.ts';
import type { WorkerOptions } from '../../worker/worker.ts';

export interface CrierModuleOptions {
  /**
   * Where this application's workers connect: a URL, or a postgres.js client whose pool they share.
   * Needed only when the application has @CrierHandler methods: publishing always goes through the
   * caller's own transaction.
   */
  connection?: Connection;
  /** The Postgres schema holding crier's tables (default "crier"). */
  schema?: string;
  /**
   * Run workers for the @CrierHandler methods of this application (default true). Set false in a
   * process that only publishes (an API beside separate worker processes).
   */
  workers?: boolean;
  /** Worker settings: pollInterval, maxConnections, shutdownTimeout, listenConnection, workerId. */
  worker?: Omit<WorkerOptions, 'connection' | 'schema' | 'subscriptions' | 'handleSignals' | 'logger' | 'instrumentation'>;
  /** Where workers log (default: Nest's Logger with the context "Crier"); false for silence. */
  logger?: Logger | false;
  /** Tracing for CrierPublisher and the workers, e.g. `openTelemetry()` from crier/opentelemetry. */
  instrumentation?: Instrumentation | Instrumentation[];
}

export interface CrierModuleAsyncOptions {
  /** Modules whose providers `inject` names (ConfigModule, ...). */
  imports?: ModuleMetadata['imports'];
  /** Tokens handed to `useFactory`, in order (ConfigService, ...). */
  inject?: FactoryProvider['inject'];
  useFactory: (...args: any[]) => CrierModuleOptions | Promise<CrierModuleOptions>;
}

/** Injection token of the resolved CrierModuleOptions. */
export const CRIER_MODULE_OPTIONS = Symbol.for('crier.nestjs.options');
