// @CrierHandler: declares a provider method as the handler of one subscription. It only records
// the declaration on the method; CrierWorkers finds it at bootstrap. It works with TypeScript's
// legacy decorators (experimentalDecorators, Nest's default) and with standard decorators alike,
// and needs no emitted metadata and no reflect-metadata.
import { toSubscriptionRow } from '../../subscriptions.ts';
import { CrierError } from '../../errors.ts';
import type { SubscriptionDefinition } from '../../worker/worker.ts';

/** A subscription as a decorator declares it: everything a SubscriptionDefinition has but the handler. */
export interface CrierHandlerOptions extends Omit<SubscriptionDefinition, 'name' | 'handler'> {
  /** The subscription's name: one consumer group, with its own deliveries, retries and dead letters. */
  subscription: string;
}

// A registered symbol, so that two copies of crier (an ESM and a CommonJS one) read each other's marks.
const declarations = Symbol.for('crier.nestjs.handler');

type Marked = { [declarations]?: CrierHandlerOptions[] };

export function CrierHandler(options: CrierHandlerOptions) {
  // Checked here, so a bad pattern or name fails when the class is loaded, pointing at it.
  toSubscriptionRow({ ...options, name: options.subscription });
  function decorate(target: object, key: string | symbol, descriptor: PropertyDescriptor): void;
  function decorate(method: (...args: any[]) => unknown, context: ClassMethodDecoratorContext): void;
  function decorate(first: unknown, second: unknown, descriptor?: PropertyDescriptor): void {
    const standard = typeof second === 'object' && second !== null && 'kind' in second;
    const method = standard ? first : descriptor?.value;
    if (typeof method !== 'function' || (standard && (second as DecoratorContext).kind !== 'method')) {
      throw new CrierError('CRIER_INVALID_OPTION', `@CrierHandler({ subscription: "${options.subscription}" }) decorates a method, not ${describe(second)}`);
    }
    const marked = method as Marked;
    // Own property: a subclass that overrides a decorated method does not inherit its declaration.
    if (!Object.prototype.hasOwnProperty.call(marked, declarations)) {
      Object.defineProperty(marked, declarations, { value: [], enumerable: false });
    }
    marked[declarations]!.push({ ...options });
  }
  return decorate;
}

/** The subscriptions declared on a method (none for an undecorated one). */
export function declaredHandlers(method: unknown): readonly CrierHandlerOptions[] {
  if (typeof method !== 'function' || !Object.prototype.hasOwnProperty.call(method, declarations)) return [];
  return (method as Marked)[declarations]!;
}

function describe(second: unknown): string {
  if (typeof second === 'object' && second !== null && 'kind' in second) return `a ${(second as DecoratorContext).kind}`;
  return typeof second === 'string' || typeof second === 'symbol' ? `the property ${String(second)}` : 'a class';
}
