import { describe, expect, it } from 'vitest';
import { tracing } from '../../src/config/operations-schema.ts';
import { resolveTracingSettings } from '../../src/tracing/settings.ts';

const configOf = (raw: Record<string, unknown> = {}) => tracing.parse(raw);

describe('tracing settings: the config and the standard OTEL_* variables', () => {
  it('is off with no endpoint anywhere', () => {
    expect(resolveTracingSettings(configOf(), {})).toBeUndefined();
  });

  it('takes the configured traces URL as it is, and adds /v1/traces to one without a path', () => {
    expect(resolveTracingSettings(configOf({ endpoint: 'http://collector:4318/v1/traces' }), {})?.url).toBe('http://collector:4318/v1/traces');
    expect(resolveTracingSettings(configOf({ endpoint: 'http://collector:4318' }), {})?.url).toBe('http://collector:4318/v1/traces');
    expect(resolveTracingSettings(configOf({ endpoint: 'http://collector:4318/custom' }), {})?.url).toBe('http://collector:4318/custom');
  });

  it('turns on from OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as is, or OTEL_EXPORTER_OTLP_ENDPOINT plus /v1/traces', () => {
    expect(resolveTracingSettings(configOf(), { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://a:4318/traces' })?.url).toBe('http://a:4318/traces');
    expect(resolveTracingSettings(configOf(), { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://b:4318' })?.url).toBe('http://b:4318/v1/traces');
    expect(resolveTracingSettings(configOf(), { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://b:4318/', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://a:4318/t' })?.url).toBe('http://a:4318/t');
  });

  it('prefers the configured endpoint to the environment’s', () => {
    expect(resolveTracingSettings(configOf({ endpoint: 'http://config:4318/v1/traces' }), { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://env:4318/v1/traces' })?.url).toBe('http://config:4318/v1/traces');
  });

  it('is off with OTEL_SDK_DISABLED=true, whatever the endpoint', () => {
    expect(resolveTracingSettings(configOf({ endpoint: 'http://collector:4318' }), { OTEL_SDK_DISABLED: 'true' })).toBeUndefined();
  });

  it('lets OTEL_SERVICE_NAME and OTEL_TRACES_SAMPLER_ARG set what the config leaves out, and the config win even when it says the default', () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://b:4318', OTEL_SERVICE_NAME: 'gateway-7', OTEL_TRACES_SAMPLER_ARG: '0.25' };
    expect(resolveTracingSettings(configOf(), env)).toMatchObject({ serviceName: 'gateway-7', sampleRatio: 0.25 });
    expect(resolveTracingSettings(configOf({ service_name: 'from-config', sample_ratio: 0.5 }), env)).toMatchObject({ serviceName: 'from-config', sampleRatio: 0.5 });
    expect(resolveTracingSettings(configOf({ service_name: 'mcp-warden', sample_ratio: 1 }), env)).toMatchObject({ serviceName: 'mcp-warden', sampleRatio: 1 });
    expect(resolveTracingSettings(configOf(), { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://b:4318' })).toMatchObject({ serviceName: 'mcp-warden', sampleRatio: 1 });
  });

  it('refuses an export timeout of 0: the exporter takes none', () => {
    expect(() => configOf({ endpoint: 'http://c:4318', export_timeout: '0s' })).toThrow(/at least 1ms/);
  });

  it('ignores a sampler argument that is not a ratio', () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://b:4318' };
    for (const arg of ['', 'half', '1.5', '-1']) expect(resolveTracingSettings(configOf(), { ...env, OTEL_TRACES_SAMPLER_ARG: arg })?.sampleRatio).toBe(1);
  });

  it('bounds the queue and each export as configured', () => {
    expect(resolveTracingSettings(configOf({ endpoint: 'http://c:4318', max_queue: 128, export_timeout: '2s' }), {})).toMatchObject({ maxQueue: 128, exportTimeoutMs: 2000 });
  });

  it('batches 512 spans per export, OTEL_BSP_MAX_EXPORT_BATCH_SIZE of them if set, never more than the queue holds', () => {
    expect(resolveTracingSettings(configOf({ endpoint: 'http://c:4318' }), {})?.exportBatch).toBe(512);
    expect(resolveTracingSettings(configOf({ endpoint: 'http://c:4318' }), { OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '100' })?.exportBatch).toBe(100);
    expect(resolveTracingSettings(configOf({ endpoint: 'http://c:4318', max_queue: 64 }), {})?.exportBatch).toBe(64);
  });
});
