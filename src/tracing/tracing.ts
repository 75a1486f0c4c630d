import type { IncomingMessage } from 'node:http';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler, TracerProvider } from '@opentelemetry/sdk-trace';
import { openSecretSource, type SecretSource } from '../config/secret-source.ts';
import type { Attributes } from '@opentelemetry/api';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import { runForRequest } from './child-spans.ts';
import { ReportedExporter } from './reported-exporter.ts';
import { RequestTrace, type TraceScope } from './request-trace.ts';
import type { TracingSettings } from './settings.ts';


/**
 * OpenTelemetry traces of the main port, sent over OTLP/HTTP. Spans wait in a bounded queue and go out
 * in batches off the request path: a collector that is down or hangs costs dropped spans, never a
 * request's time. The provider is not registered globally, so nothing else in the process is traced.
 */
export class Tracing {
  readonly #provider: TracerProvider;
  readonly #base: Pick<TraceScope, 'tracer' | 'propagator' | 'includeSubject'>;
  readonly #secrets: ReadonlyArray<SecretSource>;
  readonly #shutdownBoundMs: number;

  constructor(settings: TracingSettings, logger: Logger, version: string) {
    const secrets = Object.entries(settings.headers).map(([name, ref]) => [name, openSecretSource(ref)] as const);
    this.#secrets = secrets.map(([, source]) => source);
    for (const [name, source] of secrets) {
      const value = source.current();
      if (!value.ok) logger.error({ header: name, problem: value.problem }, 'tracing header unavailable; spans are sent without it until it can be read');
    }
    // Read at each export, so a rotated collector key is used without a restart.
    const headers = async () => {
      const current: Record<string, string> = {};
      for (const [name, source] of secrets) {
        const value = source.current();
        if (value.ok) current[name] = value.value;
      }
      return current;
    };
    const exporter = new OTLPTraceExporter({ url: settings.url, timeoutMillis: settings.exportTimeoutMs, headers });
    this.#provider = new TracerProvider({
      resource: resourceFromAttributes({ 'service.name': settings.serviceName, 'service.version': version }),
      sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(settings.sampleRatio) }),
      spanProcessors: [
        new BatchSpanProcessor({
          exporter: new ReportedExporter(exporter, logger),
          maxQueueSize: settings.maxQueue,
          maxExportBatchSize: settings.exportBatch,
          exportTimeoutMillis: settings.exportTimeoutMs,
          scheduledDelayMillis: settings.scheduleDelayMs,
        }),
      ],
    });
    this.#base = { tracer: this.#provider.getTracer('mcp-warden', version), propagator: new W3CTraceContextPropagator(), includeSubject: settings.includeSubject };
    this.#shutdownBoundMs = settings.exportTimeoutMs;
  }

  /** What the spans of one config's requests share: a reload may change the resource's path and the upstream. */
  scopeFor(config: Config): TraceScope {
    return { ...this.#base, resourcePath: new URL(config.resource.url).pathname, upstream: upstreamAttributes(config) };
  }

  /** The request's SERVER span, started now, under the client's `traceparent` when it sent a valid one. */
  begin(req: IncomingMessage, scope: TraceScope): RequestTrace {
    return new RequestTrace(scope, req);
  }

  /** Runs a pipeline step as `trace`'s request: key fetches, introspection and token requests it causes become its child spans. */
  readonly run = runForRequest;

  /** Sends what is queued, for at most one export's timeout: a collector that hangs does not hold up the exit. */
  async shutdown(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.#shutdownBoundMs);
      timer.unref();
    });
    await Promise.race([this.#provider.shutdown().catch(() => undefined), bound]);
    clearTimeout(timer);
    for (const source of this.#secrets) source.close();
  }
}

/** Where the upstream call goes, on every upstream span. */
function upstreamAttributes(config: Config): Attributes {
  if (!config.upstream.url) return { 'mcp_warden.upstream.kind': 'stdio' };
  const url = new URL(config.upstream.url);
  return { 'mcp_warden.upstream.kind': 'http', 'server.address': url.hostname, 'server.port': Number(url.port || (url.protocol === 'https:' ? 443 : 80)) };
}
