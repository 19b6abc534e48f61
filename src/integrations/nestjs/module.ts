// CrierModule: the Nest module. forRoot / forRootAsync give two modules:
//   CrierCoreModule  global: the options and CrierPublisher, injectable anywhere in the application.
//   CrierModule      CrierWorkers, which runs the workers of the @CrierHandler methods.
//
// Shutdown order matters: the worker must stop (and its running handlers finish) before any other
// module releases what handlers use, such as the application's database client. Nest runs
// onModuleDestroy module by module, nearest the root first and global modules last, and gives no
// public way to go first; so CrierModule asks to be placed before the root module (distance -1).
// The same order starts the workers after every other module's bootstrap hooks have run.
//
// No Nest decorator is used: providers are factories with explicit `inject` tokens, so this works
// whether or not the application's compiler emits decorator metadata (tsc does, esbuild/tsx do not).
import type { DynamicModule, Provider } from '@nestjs/common';
import { DiscoveryModule, DiscoveryService, MetadataScanner, ModulesContainer } from '@nestjs/core';
import { CrierError } from '../../errors.ts';
import { CRIER_MODULE_OPTIONS, type CrierModuleAsyncOptions, type CrierModuleOptions } from './options.ts';
import { CrierPublisher } from './publisher.ts';
import { CrierWorkers } from './workers.ts';

/** Holds the global providers; configured only through CrierModule. */
export class CrierCoreModule {}

export class CrierModule {
  /** Configures crier for the whole application. Import it once, in the root module. */
  static forRoot(options: CrierModuleOptions): DynamicModule {
    return CrierModule.build({ provide: CRIER_MODULE_OPTIONS, useValue: checked(options) }, []);
  }

  /** The same, with options made by a factory that can inject other providers (ConfigService, ...). */
  static forRootAsync(options: CrierModuleAsyncOptions): DynamicModule {
    if (typeof options?.useFactory !== 'function') {
      throw new CrierError('CRIER_INVALID_OPTION', 'CrierModule.forRootAsync needs useFactory: (...injected) => CrierModuleOptions');
    }
    const provider: Provider = {
      provide: CRIER_MODULE_OPTIONS,
      useFactory: async (...args: unknown[]) => checked(await options.useFactory(...args)),
      inject: options.inject ?? [],
    };
    return CrierModule.build(provider, options.imports ?? []);
  }

  private static build(optionsProvider: Provider, imports: NonNullable<DynamicModule['imports']>): DynamicModule {
    const core: DynamicModule = {
      module: CrierCoreModule,
      global: true,
      imports,
      providers: [
        optionsProvider,
        { provide: CrierPublisher, useFactory: (o: CrierModuleOptions) => new CrierPublisher({ schema: o.schema, instrumentation: o.instrumentation }), inject: [CRIER_MODULE_OPTIONS] },
      ],
      exports: [CRIER_MODULE_OPTIONS, CrierPublisher],
    };
    return {
      module: CrierModule,
      imports: [core, DiscoveryModule],
      providers: [
        {
          provide: CrierWorkers,
          useFactory: (o: CrierModuleOptions, discovery: DiscoveryService, scanner: MetadataScanner, modules: ModulesContainer) => {
            shutDownFirst(modules);
            return new CrierWorkers(o, discovery, scanner);
          },
          inject: [CRIER_MODULE_OPTIONS, DiscoveryService, MetadataScanner, ModulesContainer],
        },
      ],
      exports: [CrierWorkers],
    };
  }
}

/**
 * Gives CrierModule a distance below the root module's (0): Nest sorts modules by it for lifecycle
 * hooks, once, after the providers are made (this runs while they are). Checked with Nest 11 and 12.
 */
function shutDownFirst(modules: ModulesContainer): void {
  for (const moduleRef of modules.values()) {
    if (moduleRef.metatype === CrierModule) moduleRef.distance = -1;
  }
}

function checked(options: CrierModuleOptions): CrierModuleOptions {
  if (options === null || typeof options !== 'object') {
    throw new CrierError('CRIER_INVALID_OPTION', 'CrierModule options must be an object such as { connection: process.env.DATABASE_URL }');
  }
  return options;
}
