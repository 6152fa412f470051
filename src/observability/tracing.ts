import { context, type Span, SpanKind, SpanStatusCode, trace, TraceFlags, type Tracer } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, RandomIdGenerator, TracerProvider } from "@opentelemetry/sdk-trace";

/**
 * Tracing: a span per RPC and per callback, continuing the caller's W3C `traceparent` when it
 * sends one, with its trace ID in every log line of the request. Spans are exported over
 * OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the standard variable); otherwise they
 * only give log lines their trace IDs.
 */
export class Tracing {
  readonly #provider: TracerProvider;
  readonly #tracer: Tracer;
  readonly #propagator = new W3CTraceContextPropagator();
  readonly #exporting: boolean;
  readonly #ids = new RandomIdGenerator();

  constructor(otlpEndpoint: string | undefined) {
    this.#exporting = otlpEndpoint !== undefined;
    const spanProcessors =
      otlpEndpoint === undefined
        ? []
        : [
            new BatchSpanProcessor({
              exporter: new OTLPTraceExporter({ url: `${otlpEndpoint.replace(/\/+$/, "")}/v1/traces` }),
              scheduledDelayMillis: 1000,
            }),
          ];
    this.#provider = new TracerProvider({ resource: resourceFromAttributes({ "service.name": "oauth2-broker" }), spanProcessors });
    this.#tracer = this.#provider.getTracer("oauth2-broker");
  }

  /** Starts a server span, as a child of the `traceparent` in `headers` when there is one. */
  startServerSpan(name: string, headers: { get(name: string): string | null | undefined }): Span {
    const parent = this.#propagator.extract(context.active(), headers, {
      get: (carrier, key) => carrier.get(key) ?? undefined,
      keys: () => ["traceparent", "tracestate"],
    });
    if (this.#exporting) return this.#tracer.startSpan(name, { kind: SpanKind.SERVER }, parent);
    // Nothing would export a recorded span: a non-recording one carries the IDs for the logs at
    // a fraction of the cost, on every call.
    return trace.wrapSpanContext({
      traceId: trace.getSpanContext(parent)?.traceId ?? this.#ids.generateTraceId(),
      spanId: this.#ids.generateSpanId(),
      traceFlags: TraceFlags.NONE,
    });
  }

  static end(span: Span, error?: string): void {
    if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
    span.end();
  }

  /** Flushes and stops the exporter. */
  async shutdown(): Promise<void> {
    await this.#provider.shutdown();
  }
}

/** Log fields that tie a log line to its trace. */
export function traceFields(span: Span): { trace_id: string; span_id: string } {
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}
