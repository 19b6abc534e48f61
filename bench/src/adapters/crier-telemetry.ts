// What `telemetry=on` adds to crier in the bench (docs/observability.md, "What it costs"): tracing
// as an application that runs the OpenTelemetry SDK has it (every span sampled, a batch processor,
// an exporter that drops what it gets, so the network is not measured) and the Prometheus worker
// metrics. Publishing runs inside an active request span, which the application creates anyway: the
// cost measured is crier's own (its PRODUCER span and the headers), not the request span's.
import { context, propagation, trace, TraceFlags, type Context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator, ExportResultCode } from '@opentelemetry/core';
import { BasicTracerProvider, BatchSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { Registry } from 'prom-client';
import { openTelemetry } from '../../../src/integrations/opentelemetry.ts';
import { prometheusMetrics } from '../../../src/integrations/prometheus/index.ts';
import type { Instrumentation } from '../../../src/index.ts';

const discard: SpanExporter = {
  export: (_spans, done) => done({ code: ExportResultCode.SUCCESS }),
  shutdown: async () => {},
};

let installed: { instrumentation: Instrumentation; request: Context } | undefined;

/** Registers the SDK once per process and returns crier's instrumentation and a request context. */
export function telemetry(): { instrumentation: Instrumentation; request: Context } {
  if (installed) return installed;
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(discard)] });
  const request = trace.setSpanContext(context.active(), {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
    traceFlags: TraceFlags.SAMPLED,
  });
  installed = { instrumentation: openTelemetry({ tracerProvider }), request };
  return installed;
}

/** The worker's Prometheus counters and histograms, as a process that exposes them would have. */
export function observe(worker: Parameters<ReturnType<typeof prometheusMetrics>['observeWorker']>[0]): void {
  prometheusMetrics({ registry: new Registry() }).observeWorker(worker);
}
