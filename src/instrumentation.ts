// The seam tracing (and anything like it) plugs into: headers added to each published event, and a
// wrapper around each handler attempt. crier/opentelemetry implements it; so can anyone else. This
// module imports nothing optional, and with no instrumentation given, the publish and handler
// paths pay one `undefined` check: nothing is wrapped, nothing allocated.
import { CrierError } from './errors.ts';
import type { CrierEvent, Handler, HandlerContext } from './worker/event.ts';

/** One attempt at one delivery, as an instrumentation sees it. */
export interface AttemptInfo {
  subscription: string;
  deliveryId: string;
  /** The event's position in the log (crier.events.id, a bigint as a string). */
  eventId: string;
  topic: string;
  /** 1-based attempt number of this delivery. */
  attempt: number;
  /** The event's headers whose values are strings (W3C trace context among them). */
  headers: Record<string, string>;
  /** When the event was published (its row's created_at). */
  publishedAt: Date;
}

export interface Instrumentation {
  /** Headers merged into each published event's headers; the caller's explicit headers win. */
  publishHeaders?(topic: string): Record<string, string> | undefined;
  /** Wraps one handler attempt; calls run() once and settles as it does (or with its own error). */
  handlerAttempt?<T>(info: AttemptInfo, run: () => Promise<T>): Promise<T>;
}

/**
 * The `instrumentation` option as one Instrumentation, or undefined when it adds nothing (so hot
 * paths test one value). With a list, every publishHeaders contributes (a later one wins on a name)
 * and the handlerAttempt wrappers nest, the first outermost.
 */
export function combineInstrumentation(option: Instrumentation | readonly Instrumentation[] | undefined): Instrumentation | undefined {
  if (option === undefined) return undefined;
  const list = (Array.isArray(option) ? option : [option]) as readonly Instrumentation[];
  const bad = list.findIndex((item) => !isInstrumentation(item));
  if (bad >= 0) {
    const which = Array.isArray(option) ? `instrumentation[${bad}]` : 'instrumentation';
    throw new CrierError('CRIER_INVALID_OPTION', `${which} must be an object with publishHeaders and/or handlerAttempt functions (e.g. openTelemetry() from crier/opentelemetry)`);
  }
  const publishing = list.filter((item) => item.publishHeaders !== undefined);
  const wrapping = list.filter((item) => item.handlerAttempt !== undefined);
  if (publishing.length === 0 && wrapping.length === 0) return undefined;
  if (list.length === 1) return list[0];
  const combined: Instrumentation = {};
  if (publishing.length > 0) {
    combined.publishHeaders = (topic) => {
      let headers: Record<string, string> | undefined;
      for (const item of publishing) {
        const more = item.publishHeaders!(topic);
        if (more !== undefined) headers = headers === undefined ? more : { ...headers, ...more };
      }
      return headers;
    };
  }
  if (wrapping.length > 0) {
    combined.handlerAttempt = <T>(info: AttemptInfo, run: () => Promise<T>): Promise<T> =>
      wrapping.reduceRight<() => Promise<T>>((inner, item) => () => item.handlerAttempt!(info, inner), run)();
  }
  return combined;
}

function isInstrumentation(item: unknown): item is Instrumentation {
  if (item === null || typeof item !== 'object') return false;
  const { publishHeaders, handlerAttempt } = item as Instrumentation;
  return (publishHeaders === undefined || typeof publishHeaders === 'function') && (handlerAttempt === undefined || typeof handlerAttempt === 'function');
}

/** `headers` under the instrumentation's own for `topic` (the caller's names win). */
export function withPublishHeaders<H extends object>(headers: H, topic: string, instrumentation: Instrumentation | undefined): H {
  const added = instrumentation?.publishHeaders?.(topic);
  return added === undefined ? headers : { ...added, ...headers };
}

/**
 * The handler, each of its attempts run inside handlerAttempt; the handler itself when there is
 * nothing to wrap. Its result is then always a promise (the worker awaits it as any async handler's).
 */
export function instrumentHandler<P, T extends string>(handler: Handler<P, T>, instrumentation: Instrumentation | undefined): Handler<P, T> {
  const wrap = instrumentation?.handlerAttempt?.bind(instrumentation);
  if (wrap === undefined) return handler;
  return (event: CrierEvent<P, T>, context: HandlerContext) =>
    wrap(attemptInfo(event, context), async () => handler(event, context));
}

function attemptInfo(event: CrierEvent<unknown, string>, context: HandlerContext): AttemptInfo {
  const headers: Record<string, string> = {};
  // Stored headers are a JSON object when crier wrote them; a row written by hand may hold any JSON.
  const stored: unknown = event.headers;
  if (stored !== null && typeof stored === 'object') {
    for (const [name, value] of Object.entries(stored)) if (typeof value === 'string') headers[name] = value;
  }
  return {
    subscription: context.subscription,
    deliveryId: context.deliveryId,
    eventId: event.id,
    topic: event.topic,
    attempt: context.attempt,
    headers,
    publishedAt: event.createdAt,
  };
}
