// crier/opentelemetry against a real worker: one trace from a publish inside an HTTP-ish span to
// every attempt of its handler, in the SDK's in-memory exporter.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { context, propagation, SpanKind, SpanStatusCode, trace, type Context, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { z } from 'zod';
import { CrierError, defineCatalog, type CrierEvent, type Instrumentation, type SubscriptionDefinition } from '../src/index.ts';
import { createCrier, createTypedCrier } from './support/history.ts';
import { combineInstrumentation } from '../src/instrumentation.ts';
import { openTelemetry } from '../src/integrations/opentelemetry.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/database.ts';

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const tracer: Tracer = provider.getTracer('test');
const crier = createCrier({ instrumentation: openTelemetry({ tracerProvider: provider }) });

let db: TestDatabase;
before(async () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  db = await createTestDatabase('opentelemetry');
});
after(async () => {
  await db.drop();
  context.disable();
  propagation.disable();
});
afterEach(() => exporter.reset());

/** Runs `work` inside a SERVER span, as an HTTP framework's instrumentation would. */
function inRequest<T>(work: () => Promise<T>): Promise<{ result: T; request: ReadableSpan }> {
  return tracer.startActiveSpan('POST /orders', { kind: SpanKind.SERVER }, async (span) => {
    try {
      return { result: await work(), request: span as unknown as ReadableSpan };
    } finally {
      span.end();
    }
  });
}

/** Runs `work` with a worker of `subscription`, started in `startIn` (default: the active context). */
async function withWorker<T>(subscription: SubscriptionDefinition, work: () => Promise<T>, startIn: Context = context.active()): Promise<T> {
  const worker = crier.worker({ connection: db.url, handleSignals: false, logger: false, pollInterval: 200, subscriptions: [subscription] });
  await context.with(startIn, () => worker.start());
  try {
    return await work();
  } finally {
    await worker.stop();
  }
}

const consumerSpans = (eventId: string) =>
  exporter.getFinishedSpans()
    .filter((s) => s.kind === SpanKind.CONSUMER && s.attributes['messaging.message.id'] === eventId)
    .sort((a, b) => Number(a.attributes['crier.delivery.attempt']) - Number(b.attributes['crier.delivery.attempt']));

async function storedHeaders(eventId: string): Promise<Record<string, unknown>> {
  const [row] = await db.sql`SELECT headers FROM crier.events WHERE id = ${eventId}`;
  return row!.headers;
}

describe('crier/opentelemetry', () => {
  test('one trace from a publish in a request span to every attempt of its handler, across a retry', async () => {
    const followUps: string[] = [];
    const subscription: SubscriptionDefinition = {
      name: 'otel_inventory',
      topics: ['order.*'],
      maxAttempts: 3,
      backoff: { base: 10, max: 20 },
      handler: async (event: CrierEvent, ctx) => {
        if (ctx.attempt === 1) throw new Error('warehouse offline');
        // The attempt's span is active: the handler's own spans and ctx.publish join the trace.
        await tracer.startActiveSpan('reserve stock', async (span) => span.end());
        followUps.push((await ctx.publish('stock.reserved', { order: event.id })).id);
      },
    };
    const { published, request, deliveryId } = await withWorker(subscription, async () => {
      const { result: published, request } = await inRequest(() => db.sql.begin((tx) => crier.publish(tx, 'order.created', { orderId: 1 })));
      // The span ends as the handler returns; the ack follows (batched with the next claim).
      const delivery = await eventually(async () => {
        const [done] = await db.sql`SELECT id::text, attempts FROM crier.deliveries WHERE event_id = ${published.id} AND state = 'done'`;
        return consumerSpans(published.id).length === 2 ? done : undefined;
      }, 15_000, 'two attempts traced, the delivery done');
      assert.equal(delivery!.attempts, 2);
      return { published, request, deliveryId: delivery!.id as string };
    });

    const traceId = request.spanContext().traceId;
    const [create, ...otherCreates] = exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.PRODUCER && s.name === 'create order.created');
    assert.equal(otherCreates.length, 0);
    assert.equal(create!.spanContext().traceId, traceId);
    assert.equal(create!.parentSpanContext?.spanId, request.spanContext().spanId, 'the producer span is a child of the request');
    assert.equal(create!.attributes['messaging.operation.type'], 'create');
    assert.equal(create!.attributes['messaging.destination.name'], 'order.created');
    // The event carries the producer span's context, as the W3C header.
    assert.equal((await storedHeaders(published.id)).traceparent, `00-${traceId}-${create!.spanContext().spanId}-01`);

    const attempts = consumerSpans(published.id);
    assert.deepEqual(attempts.map((s) => s.attributes['crier.delivery.attempt']), [1, 2]);
    for (const span of attempts) {
      assert.equal(span.name, 'process order.created');
      assert.equal(span.spanContext().traceId, traceId, 'every attempt is in the request\'s trace');
      assert.equal(span.parentSpanContext?.spanId, create!.spanContext().spanId, 'a child of the producer span');
      assert.deepEqual(span.links.map((l) => l.context.spanId), [create!.spanContext().spanId], 'and linked to it');
      assert.deepEqual(
        { ...span.attributes, 'crier.delivery.attempt': undefined, 'error.type': undefined },
        {
          'messaging.system.name': 'crier',
          'messaging.system': 'crier',
          'messaging.operation.type': 'process',
          'messaging.operation.name': 'process',
          'messaging.destination.name': 'order.created',
          'messaging.destination.subscription.name': 'otel_inventory',
          'messaging.consumer.group.name': 'otel_inventory',
          'messaging.message.id': published.id,
          'crier.delivery.id': deliveryId,
          'crier.delivery.attempt': undefined,
          'error.type': undefined,
        },
      );
    }
    const [failed, succeeded] = attempts;
    assert.deepEqual(failed!.status, { code: SpanStatusCode.ERROR, message: 'warehouse offline' });
    assert.equal(failed!.attributes['error.type'], 'Error');
    const [exception] = failed!.events;
    assert.equal(exception?.name, 'exception');
    assert.equal(exception?.attributes?.['exception.message'], 'warehouse offline');
    assert.match(String(exception?.attributes?.['exception.stacktrace']), /opentelemetry\.test\.ts/);
    assert.equal(succeeded!.status.code, SpanStatusCode.UNSET);
    assert.equal(succeeded!.events.length, 0);

    const inner = exporter.getFinishedSpans().find((s) => s.name === 'reserve stock');
    assert.equal(inner?.parentSpanContext?.spanId, succeeded!.spanContext().spanId, 'the handler\'s own span is a child of its attempt');
    // ctx.publish: the follow-up event continues the trace, from a producer span under the attempt.
    const followUp = exporter.getFinishedSpans().find((s) => s.name === 'create stock.reserved');
    assert.equal(followUp?.parentSpanContext?.spanId, succeeded!.spanContext().spanId);
    assert.equal((await storedHeaders(followUps[0]!)).traceparent, `00-${traceId}-${followUp!.spanContext().spanId}-01`);
  });

  test('an event published outside any span adds no headers, and its handler starts a trace of its own', async () => {
    const subscription: SubscriptionDefinition = { name: 'otel_untraced', topics: ['untraced.*'], handler: () => {} };
    // Started inside a span: the worker's loops inherit that context, which must not become the parent.
    const boot = tracer.startSpan('boot');
    const published = await withWorker(subscription, async () => {
      const published = await db.sql.begin((tx) => crier.publish(tx, 'untraced.created', { n: 1 }));
      await eventually(() => consumerSpans(published.id).length === 1, 15_000, 'the attempt traced');
      return published;
    }, trace.setSpan(context.active(), boot));
    boot.end();
    assert.deepEqual(await storedHeaders(published.id), {});
    const [span] = consumerSpans(published.id);
    assert.equal(span!.parentSpanContext, undefined, 'a root span');
    assert.deepEqual(span!.links, []);
    assert.notEqual(span!.spanContext().traceId, boot.spanContext().traceId);
    assert.equal(exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.PRODUCER).length, 0);
  });

  test('headers the caller sets are kept; every publish path adds trace context; none without instrumentation', async () => {
    const callerTraceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const catalog = defineCatalog({ 'typed.created': { versions: [z.object({ n: z.number() })] } });
    const typed = createTypedCrier(catalog, { instrumentation: openTelemetry({ tracerProvider: provider }) });
    const plain = createCrier();
    // Transactional: the attempt's span wraps the handler inside its transaction just the same.
    const subscription: SubscriptionDefinition = { name: 'otel_explicit', topics: ['explicit.*'], transactional: true, handler: () => {} };
    const { explicit, many, typedOne, typedMany, untraced, request } = await withWorker(subscription, async () => {
      const { result, request } = await inRequest(() =>
        db.sql.begin(async (tx) => ({
          explicit: await crier.publish(tx, 'explicit.created', {}, { headers: { traceparent: callerTraceparent, correlationId: 'c-1' } }),
          many: await crier.publishMany(tx, [{ topic: 'other.one', payload: {} }, { topic: 'other.two', payload: {} }]),
          typedOne: await typed.publish(tx, 'typed.created', { n: 1 }),
          typedMany: await typed.publishMany(tx, [{ topic: 'typed.created', payload: { n: 2 } }]),
          untraced: await plain.publish(tx, 'other.plain', {}),
        })),
      );
      await eventually(() => consumerSpans(result.explicit.id).length === 1, 15_000, 'the attempt traced');
      return { ...result, request };
    });
    const headers = await storedHeaders(explicit.id);
    assert.equal(headers.traceparent, callerTraceparent, 'the caller\'s traceparent is not overwritten');
    assert.equal(headers.correlationId, 'c-1');
    const [span] = consumerSpans(explicit.id);
    assert.equal(span!.spanContext().traceId, '0af7651916cd43dd8448eb211c80319c', 'the handler continues the caller\'s trace');
    assert.equal(span!.parentSpanContext?.spanId, 'b7ad6b7169203331');
    assert.equal(span!.attributes['messaging.message.conversation_id'], 'c-1');

    const traceId = request.spanContext().traceId;
    for (const event of [...many, typedOne, ...typedMany]) {
      assert.match(String((await storedHeaders(event.id)).traceparent), new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`), `${event.topic} carries the trace`);
    }
    assert.deepEqual(await storedHeaders(untraced.id), {}, 'a crier without instrumentation adds nothing');
  });

  test('instrumentations combine: headers merge, attempt wrappers nest (first outermost); bad ones are refused', async () => {
    const calls: string[] = [];
    const wrapper = (name: string): Instrumentation => ({
      publishHeaders: () => ({ [`x-${name}`]: name, shared: name }),
      async handlerAttempt(info, run) {
        calls.push(`${name} in ${info.attempt}`);
        try {
          return await run();
        } finally {
          calls.push(`${name} out`);
        }
      },
    });
    const combined = combineInstrumentation([wrapper('a'), {}, wrapper('b')])!;
    assert.deepEqual(combined.publishHeaders!('t'), { 'x-a': 'a', 'x-b': 'b', shared: 'b' });
    const info = { subscription: 's', deliveryId: '1', eventId: '1', topic: 't', attempt: 1, headers: {}, publishedAt: new Date() };
    assert.equal(await combined.handlerAttempt!(info, async () => 42), 42);
    assert.deepEqual(calls, ['a in 1', 'b in 1', 'b out', 'a out']);
    assert.equal(combineInstrumentation([{}]), undefined, 'nothing to do: the hot paths see undefined');
    const refused = (which: string) => (error: unknown) =>
      error instanceof CrierError && error.code === 'CRIER_INVALID_OPTION' && error.message.includes(`: ${which}`);
    assert.throws(() => createCrier({ instrumentation: [wrapper('a'), 5 as never] }), refused('instrumentation[1]'));
    assert.throws(() => createCrier({ instrumentation: { handlerAttempt: 'yes' } as never }), refused('instrumentation must'));
  });
});
