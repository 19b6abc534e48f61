// CrierWorkers: ties crier's Worker to the Nest application's lifecycle. At bootstrap it finds
// every @CrierHandler method among the application's providers and controllers, and runs one
// worker for all their subscriptions; when the application closes (app.close(), or a signal with
// enableShutdownHooks) it stops that worker gracefully: no more claims, running handlers finish
// within shutdownTimeout, the rest go back to pending.
//
// It stops in onModuleDestroy, the first of Nest's shutdown hooks, and CrierModule's hooks run before
// every other module's (module.ts), so handlers finish before the modules they use tear down.
import type { OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { Logger as NestLogger } from '@nestjs/common';
import type { DiscoveryService, MetadataScanner } from '@nestjs/core';
import { createCrier } from '../../crier.ts';
import { CrierError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { Worker, SubscriptionDefinition } from '../../worker/worker.ts';
import { declaredHandlers } from './handler.decorator.ts';
import type { CrierModuleOptions } from './options.ts';

export class CrierWorkers implements OnApplicationBootstrap, OnModuleDestroy {
  private running: Worker | undefined;
  private declared: SubscriptionDefinition[] = [];

  constructor(
    private readonly options: CrierModuleOptions,
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
  ) {}

  /** The subscriptions found on @CrierHandler methods (known after bootstrap). */
  get subscriptions(): readonly SubscriptionDefinition[] {
    return this.declared;
  }

  /** The running worker, if this application runs one (for health checks). */
  get worker(): Worker | undefined {
    return this.running;
  }

  async onApplicationBootstrap(): Promise<void> {
    this.declared = this.discover();
    if (this.declared.length === 0 || this.options.workers === false) return;
    if (this.options.connection === undefined) {
      throw new CrierError(
        'CRIER_INVALID_OPTION',
        `CrierModule has @CrierHandler subscriptions (${this.declared.map((s) => s.name).join(', ')}) but no connection for their worker: pass forRoot({ connection }), or workers: false in a process that only publishes`,
      );
    }
    const worker = createCrier({ schema: this.options.schema, instrumentation: this.options.instrumentation }).worker({
      ...this.options.worker,
      connection: this.options.connection,
      subscriptions: this.declared,
      logger: this.options.logger ?? nestLogger(),
      // Nest owns the signals (enableShutdownHooks) and calls onModuleDestroy on SIGTERM.
      handleSignals: false,
    });
    await worker.start();
    this.running = worker;
  }

  async onModuleDestroy(): Promise<void> {
    const worker = this.running;
    this.running = undefined;
    await worker?.stop();
  }

  private discover(): SubscriptionDefinition[] {
    const found = new Map<string, { definition: SubscriptionDefinition; where: string }>();
    const seen = new Set<object>(); // one instance may be provided under two tokens
    for (const wrapper of [...this.discovery.getProviders(), ...this.discovery.getControllers()]) {
      const { instance } = wrapper;
      if (wrapper.isAlias || instance === null || typeof instance !== 'object' || seen.has(instance)) continue;
      seen.add(instance);
      // The instance's own prototype: for a factory provider, the metatype is the factory.
      const prototype = Object.getPrototypeOf(instance) as Record<string, unknown> | null;
      for (const methodName of this.scanner.getAllMethodNames(prototype)) {
        const declarations = declaredHandlers(prototype![methodName]);
        if (declarations.length === 0) continue;
        const where = `${prototype!.constructor?.name ?? String(wrapper.name)}.${methodName}`;
        if (!wrapper.isDependencyTreeStatic() || wrapper.isTransient) {
          throw new CrierError('CRIER_INVALID_OPTION', `@CrierHandler ${where} is on a request-scoped or transient provider; handlers must be on default (singleton) scoped providers`);
        }
        const method = prototype![methodName] as (...args: unknown[]) => unknown;
        for (const { subscription: name, ...spec } of declarations) {
          const earlier = found.get(name);
          if (earlier) {
            throw new CrierError('CRIER_INVALID_OPTION', `subscription "${name}" is handled by both ${earlier.where} and ${where}; a subscription has one handler`);
          }
          found.set(name, { definition: { ...spec, name, handler: (event, ctx) => method.call(instance, event, ctx) }, where });
        }
      }
    }
    return [...found.values()].map((f) => f.definition);
  }
}

function nestLogger(): Logger {
  const logger = new NestLogger('Crier');
  return { info: (m) => logger.log(m), warn: (m) => logger.warn(m), error: (m) => logger.error(m) };
}
