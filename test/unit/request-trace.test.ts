import type { IncomingMessage } from 'node:http';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { describe, expect, it } from 'vitest';
import { runForRequest, traced } from '../../src/tracing/child-spans.ts';
import { RequestTrace, type SettledRequest } from '../../src/tracing/request-trace.ts';

function traceOf(includeSubject: boolean, headers: Record<string, string> = {}) {
  const exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  const scope = { tracer: provider.getTracer('test'), propagator: new W3CTraceContextPropagator(), includeSubject, resourcePath: '/mcp', upstream: {} };
  const req = { method: 'POST', headers } as unknown as IncomingMessage;
  // The simple processor hands spans over a microtask later: flushed before they are read.
  const finished = async () => {
    await provider.forceFlush();
    return exporter.getFinishedSpans();
  };
  return { finished, trace: new RequestTrace(scope, req) };
}

const settled = (extra: Partial<SettledRequest> = {}): SettledRequest => ({
  outcome: 'allowed',
  reason: undefined,
  requestId: 'r1',
  path: '/mcp',
  principal: { issuer: 'https://idp.example.com', subject: 'alice', clientId: 'client-1' },
  rpc: { methods: ['tools/call'], target: 'search' },
  upstream: { upstreamStatus: 200, failure: undefined, stream: false },
  ...extra,
});

describe('a request’s spans', () => {
  it('carry the issuer and client id, and the subject only with include_subject', async () => {
    for (const includeSubject of [false, true]) {
      const { finished, trace } = traceOf(includeSubject);
      trace.end('POST', 200, settled());
      const [span] = await finished();
      expect(span!.attributes).toMatchObject({ 'mcp_warden.principal.issuer': 'https://idp.example.com', 'mcp_warden.principal.client_id': 'client-1', 'gen_ai.tool.name': 'search' });
      expect(span!.attributes['user.id']).toBe(includeSubject ? 'alice' : undefined);
    }
  });

  it('mark a 5xx as an error and a refusal not', async () => {
    const { finished, trace } = traceOf(false);
    trace.end('POST', 503, settled({ outcome: 'unavailable', reason: 'verifier_unavailable', upstream: undefined, principal: undefined }));
    const refused = traceOf(false);
    refused.trace.end('POST', 401, settled({ outcome: 'denied', reason: 'expired', upstream: undefined, principal: undefined }));
    expect((await finished())[0]!.status.code).toBe(2);
    expect((await finished())[0]!.attributes['error.type']).toBe('verifier_unavailable');
    expect((await refused.finished())[0]!.status.code).toBe(0);
  });

  it('take a method named like an object property for a method, not a target', async () => {
    const { finished, trace } = traceOf(false);
    trace.end('POST', 200, settled({ rpc: { methods: ['constructor'], target: 'x' } }));
    const attributes = (await finished())[0]!.attributes;
    expect(attributes['mcp.method.name']).toBe('constructor');
    expect(Object.values(attributes).every((value) => typeof value !== 'function')).toBe(true);
  });

  it('end the upstream call with its status, under the request', async () => {
    const { finished, trace } = traceOf(false, { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
    const headers = trace.upstreamCall('POST');
    trace.end('POST', 502, settled({ upstream: { upstreamStatus: undefined, failure: 'refused', stream: false } }));
    const [upstream, server] = await finished();
    expect(headers.traceparent).toBe(`00-0af7651916cd43dd8448eb211c80319c-${upstream!.spanContext().spanId}-01`);
    expect(upstream!.parentSpanContext?.spanId).toBe(server!.spanContext().spanId);
    expect(upstream!.attributes['error.type']).toBe('refused');
  });

  it('take no child spans once the request has settled, nor outside any request', async () => {
    const { finished, trace } = traceOf(false);
    await runForRequest(trace, () => traced('jwks fetch', async () => 'keys'));
    trace.end('POST', 200, settled());
    await runForRequest(trace, () => traced('jwks fetch', async () => 'keys'));
    await traced('jwks fetch', async () => 'keys');
    expect((await finished()).map((span) => span.name)).toEqual(['jwks fetch', 'POST /mcp']);
  });
});
