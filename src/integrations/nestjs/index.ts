// crier/nestjs: crier as a NestJS module. Loaded only through this subpath: nothing in crier's core
// imports it, so applications without Nest never load @nestjs/*.
export { CrierModule, CrierCoreModule } from './module.ts';
export { CrierPublisher } from './publisher.ts';
export { CrierHandler, type CrierHandlerOptions } from './handler.decorator.ts';
export { CrierWorkers } from './workers.ts';
export { CRIER_MODULE_OPTIONS, type CrierModuleAsyncOptions, type CrierModuleOptions } from './options.ts';
export type { CrierEvent, HandlerContext } from '../../worker/event.ts';
