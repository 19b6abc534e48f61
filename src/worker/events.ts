// The worker's events, for alerting and metrics: what happened to each handler attempt (handled,
// retry, dead) and worker-level trouble (error). A small typed emitter of its own rather than node's
// EventEmitter: an 'error' with no listener must not throw, and a listener that throws must never
// break the worker (it is logged, once per listener, and the other listeners still run).
import { CrierError } from '../errors.ts';
import { errorMessage, type Logger } from '../logger.ts';

/** One attempt of one delivery, as the attempt events report it. */
export interface AttemptEvent {
  subscription: string;
  deliveryId: string;
  eventId: string;
  topic: string;
  /** 1-based attempt number of this delivery. */
  attempt: number;
  /** The event's commit/publish time as stored (for end-to-end latency). */
  publishedAt: Date;
  /** When this attempt's handler started. */
  startedAt: Date;
  /** Handler run time of this attempt. */
  durationMs: number;
}

export interface WorkerEvents {
  /** The handler succeeded and its ack is queued (transactional: committed with the ack). */
  handled: (event: AttemptEvent) => void;
  /** The attempt failed and its retry is written: the delivery runs again at `retryAt`. */
  retry: (event: AttemptEvent & { error: unknown; retryAt: Date }) => void;
  /** The attempt failed and the delivery is now dead-lettered (last attempt, or UnrecoverableError). */
  dead: (event: AttemptEvent & { error: unknown }) => void;
  /** Worker-level trouble: claim failed, client replaced, LISTEN lost, ack refused, lease lost. */
  error: (event: { error: unknown; message: string; subscription?: string }) => void;
}

export type WorkerEventName = keyof WorkerEvents;

const eventNames: readonly WorkerEventName[] = ['handled', 'retry', 'dead', 'error'];

export class WorkerEmitter {
  private readonly listeners: { [K in WorkerEventName]: WorkerEvents[K][] } = { handled: [], retry: [], dead: [], error: [] };
  /** Listeners that threw once: logged then, not again. */
  private readonly reported = new WeakSet<object>();

  constructor(private readonly logger: Logger) {}

  /** Adds a listener; returns the function that removes it. */
  on<K extends WorkerEventName>(name: K, listener: WorkerEvents[K]): () => void {
    if (!eventNames.includes(name)) {
      throw new CrierError('CRIER_INVALID_OPTION', `no worker event "${String(name)}"; the events are ${eventNames.join(', ')}`);
    }
    if (typeof listener !== 'function') throw new CrierError('CRIER_INVALID_OPTION', `worker.on("${name}", listener): the listener must be a function`);
    this.listeners[name].push(listener);
    return () => this.off(name, listener);
  }

  off<K extends WorkerEventName>(name: K, listener: WorkerEvents[K]): void {
    const list = this.listeners[name];
    const at = list?.indexOf(listener) ?? -1;
    if (at >= 0) list.splice(at, 1);
  }

  /** Whether anyone listens: callers skip building an event nobody would receive. */
  has(name: WorkerEventName): boolean {
    return this.listeners[name].length > 0;
  }

  emit<K extends WorkerEventName>(name: K, event: Parameters<WorkerEvents[K]>[0]): void {
    for (const listener of this.listeners[name].slice()) {
      try {
        const result: unknown = (listener as (e: typeof event) => unknown)(event);
        if (typeof (result as PromiseLike<unknown> | undefined)?.then === 'function') {
          (result as Promise<unknown>).then(undefined, (error: unknown) => this.listenerFailed(name, listener, error));
        }
      } catch (error) {
        this.listenerFailed(name, listener, error);
      }
    }
  }

  private listenerFailed(name: WorkerEventName, listener: object, error: unknown): void {
    if (this.reported.has(listener)) return;
    this.reported.add(listener);
    this.logger.error({ event: name, error: errorMessage(error) }, `a worker.on("${name}") listener threw (${errorMessage(error)}); the worker goes on (reported once per listener)`);
  }
}

/** What an 'error' event carries. */
export type WorkerTrouble = Parameters<WorkerEvents['error']>[0];
