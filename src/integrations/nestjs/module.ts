// CrierModule: the Nest module. forRoot / forRootAsync give two modules:
//   CrierCoreModule  global: the options and CrierPublisher, injectable anywhere in the application.
//   CrierModule      not global, imported by the root module: CrierWorkers, which runs the workers.
// The split is for shutdown order: Nest destroys global modules last, and modules nearest the root
// first, so the workers stop before the application's other modules (its database clients) do.
//
// No Nest decorator is used: providers are factories with explicit `inject` tokens, so this works
// whether or not the application's compiler emits decorator metadata (tsc does, esbuild/tsx do not).
import type { DynamicModule, Provider } from '@nestjs/common';
import { DiscoveryModule, DiscoveryService, MetadataScanner } from '@nestjs/core';
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
      inject: (options.inject ?? []) as never[],
    };
    return CrierModule.build(provider, (options.imports ?? []) as DynamicModule['imports'] & unknown[]);
  }

  private static build(optionsProvider: Provider, imports: NonNullable<DynamicModule['imports']>): DynamicModule {
    const core: DynamicModule = {
      module: CrierCoreModule,
      global: true,
      imports,
      providers: [
        optionsProvider,
        { provide: CrierPublisher, useFactory: (o: CrierModuleOptions) => new CrierPublisher({ schema: o.schema }), inject: [CRIER_MODULE_OPTIONS] },
      ],
      exports: [CRIER_MODULE_OPTIONS, CrierPublisher],
    };
    return {
      module: CrierModule,
      imports: [core, DiscoveryModule],
      providers: [
        {
          provide: CrierWorkers,
          useFactory: (o: CrierModuleOptions, discovery: DiscoveryService, scanner: MetadataScanner) => new CrierWorkers(o, discovery, scanner),
          inject: [CRIER_MODULE_OPTIONS, DiscoveryService, MetadataScanner],
        },
      ],
      exports: [CrierWorkers],
    };
  }
}

function checked(options: CrierModuleOptions): CrierModuleOptions {
  if (options === null || typeof options !== 'object') {
    throw new CrierError('CRIER_INVALID_OPTION', 'CrierModule options must be an object such as { connection: process.env.DATABASE_URL }');
  }
  return options;
}
