import type { Config } from '../config/schema.ts';
import type { SecretRef } from '../config/secret-ref.ts';

type TracingConfig = Config['tracing'];

/** What a key neither the config nor the standard variables give is. */
const DEFAULT_SERVICE_NAME = 'mcp-warden';
const DEFAULT_SAMPLE_RATIO = 1;
const TRACES_PATH = 'v1/traces';
/** How long finished spans wait to be sent together (the SDK's default), unless OTEL_BSP_SCHEDULE_DELAY says otherwise. */
const DEFAULT_SCHEDULE_DELAY_MS = 5000;
/** Spans per export (the SDK's default), unless OTEL_BSP_MAX_EXPORT_BATCH_SIZE says otherwise; never more than the queue. */
const DEFAULT_EXPORT_BATCH = 512;

/** Tracing as it runs: the config and the standard OTEL_* variables, resolved once at start. */
export interface TracingSettings {
  /** The collector's OTLP/HTTP traces URL. */
  readonly url: string;
  readonly serviceName: string;
  /** Share of new traces recorded; a client's sampled `traceparent` is followed whatever it is. */
  readonly sampleRatio: number;
  /** Collector headers from the config; OTEL_EXPORTER_OTLP_(TRACES_)HEADERS are added by the exporter, ours win per name. */
  readonly headers: Readonly<Record<string, SecretRef>>;
  readonly includeSubject: boolean;
  readonly maxQueue: number;
  readonly exportTimeoutMs: number;
  readonly scheduleDelayMs: number;
  readonly exportBatch: number;
}

/**
 * On when `tracing.endpoint` is set, else when OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as is) or
 * OTEL_EXPORTER_OTLP_ENDPOINT (plus /v1/traces) is; off (undefined) otherwise, or with OTEL_SDK_DISABLED=true.
 * The config wins where both are given: `service_name` and `sample_ratio` left out yield to
 * OTEL_SERVICE_NAME and OTEL_TRACES_SAMPLER_ARG.
 */
export function resolveTracingSettings(config: TracingConfig, env: NodeJS.ProcessEnv = process.env): TracingSettings | undefined {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return undefined;
  const url = endpointOf(config.endpoint, env);
  if (!url) return undefined;
  const envRatio = Number(env.OTEL_TRACES_SAMPLER_ARG);
  const envRatioGiven = Boolean(env.OTEL_TRACES_SAMPLER_ARG?.trim()) && envRatio >= 0 && envRatio <= 1;
  const envDelay = Number(env.OTEL_BSP_SCHEDULE_DELAY);
  const envBatch = Number(env.OTEL_BSP_MAX_EXPORT_BATCH_SIZE);
  return {
    url,
    serviceName: config.service_name ?? (env.OTEL_SERVICE_NAME?.trim() || DEFAULT_SERVICE_NAME),
    sampleRatio: config.sample_ratio ?? (envRatioGiven ? envRatio : DEFAULT_SAMPLE_RATIO),
    headers: config.headers,
    includeSubject: config.include_subject,
    maxQueue: config.max_queue,
    exportTimeoutMs: config.export_timeout,
    scheduleDelayMs: env.OTEL_BSP_SCHEDULE_DELAY?.trim() && envDelay > 0 ? envDelay : DEFAULT_SCHEDULE_DELAY_MS,
    exportBatch: Math.min(config.max_queue, Number.isInteger(envBatch) && envBatch > 0 ? envBatch : DEFAULT_EXPORT_BATCH),
  };
}

/**
 * `tracing.endpoint` is the traces URL itself; one without a path (`http://collector:4318`, as the
 * generic OTLP endpoint is usually written) gets /v1/traces, since nothing would accept spans at `/`.
 */
function endpointOf(configured: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  if (configured) {
    const url = new URL(configured);
    if (url.pathname !== '/') return configured;
    url.pathname = `/${TRACES_PATH}`;
    return url.href;
  }
  const traces = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  if (traces) return traces;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (base) return `${base.endsWith('/') ? base : `${base}/`}${TRACES_PATH}`;
  return undefined;
}
