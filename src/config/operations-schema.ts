import { z } from 'zod';
import { count, duration, headerName, httpUrl, secret, text } from './fields.ts';

/**
 * OpenTelemetry traces, off unless an endpoint is given here or in OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT.
 * Spans go to an OTLP/HTTP collector through a bounded queue; an exporter that is down or slow drops
 * spans, never delays a request.
 */
export const tracing = z
  .strictObject({
    /** The collector's OTLP/HTTP traces URL, e.g. http://otel-collector:4318/v1/traces. */
    endpoint: httpUrl().optional(),
    /** Default: OTEL_SERVICE_NAME, else mcp-warden. */
    service_name: text().pipe(z.string().min(1).max(200)).optional(),
    /** Share of new traces recorded (a client's sampled `traceparent` is followed). Default: OTEL_TRACES_SAMPLER_ARG, else 1. */
    sample_ratio: z.number().min(0).max(1).optional(),
    /** Headers for the collector (e.g. its API key), each a secret reference. */
    headers: z.record(headerName(), secret()).default({}),
    /** Whether spans carry the principal's subject; the issuer and client id are always there. */
    include_subject: z.boolean().default(false),
    /** Spans waiting for export; beyond, new ones are dropped. */
    max_queue: count(2048, 64, 100_000),
    /** One export's limit; a collector slower than this loses that batch. */
    export_timeout: duration('5s', 60_000).refine((ms) => ms >= 1, 'must be at least 1ms'),
  })
  .prefault({});

const limit = () => z.number().int().min(1).max(100_000_000).optional();

/** Requests allowed per `window` on the resource path, refilled evenly, bursts up to the number; a key left out has no limit. */
export const requestLimits = z
  .strictObject({
    /** Per issuer + subject. */
    per_principal: limit(),
    /** Per issuer + client id. */
    per_client: limit(),
    /** Per client IP address (the socket's, never a header's). */
    per_ip: limit(),
    window: duration('1m', 86_400_000),
  })
  .prefault({});

/** Where the request buckets live: this process, or a Redis/Valkey server every replica shares. */
export const limitStore = z.preprocess(
  (value) => (typeof value === 'object' && value !== null && !('type' in value) ? { ...value, type: 'memory' } : value),
  z
    .discriminatedUnion('type', [
      z.strictObject({ type: z.literal('memory'), max_keys: count(100_000, 100, 10_000_000) }),
      z.strictObject({
        type: z.literal('redis'),
        /** redis:// or rediss:// URL; it may carry a password, so it comes from env or a file. */
        url: secret(),
        key_prefix: z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'letters, digits, _ . : - only').default('mcp-warden'),
        /** A decision the store does not answer within this follows on_store_error. */
        timeout: duration('250ms', 10_000),
      }),
    ])
    .default({ type: 'memory', max_keys: 100_000 }),
);
