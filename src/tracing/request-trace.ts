import type { IncomingMessage } from 'node:http';
import { defaultTextMapGetter, defaultTextMapSetter, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span, type Tracer } from '@opentelemetry/api';
import type { W3CTraceContextPropagator } from '@opentelemetry/core';
import type { SpanParent } from './child-spans.ts';

/** What every request's trace shares, built once by the tracing at start. */
export interface TraceScope {
  readonly tracer: Tracer;
  readonly propagator: W3CTraceContextPropagator;
  readonly includeSubject: boolean;
  /** The resource's path (from `resource.url`): the one route of the upstream's that is bounded. */
  readonly resourcePath: string;
  /** The upstream call's fixed attributes: where it goes. */
  readonly upstream: Attributes;
}

/** What the access line knows of a settled request; the pipeline's Access is one. */
export interface SettledRequest {
  readonly outcome: string;
  readonly reason: string | undefined;
  readonly requestId: string;
  /** As screened: without the query, which is never recorded. */
  readonly path: string;
  readonly principal: { readonly issuer: string; readonly subject?: string | undefined; readonly clientId?: string | undefined } | undefined;
  readonly rpc: { readonly methods: ReadonlyArray<string | undefined>; readonly target: string | undefined } | undefined;
  readonly upstream: { readonly upstreamStatus: number | undefined; readonly failure: string | undefined; readonly stream: boolean } | undefined;
}

/** The W3C trace context headers: a client's are replaced by ours on the way upstream. */
export const TRACE_HEADERS: readonly string[] = ['traceparent', 'tracestate'];

/** Outcomes whose path is one of ours, from config: a bounded route. */
const OWN_ROUTES = new Set(['metadata', 'broker']);

/** The attribute naming what an MCP method acts on (the OpenTelemetry MCP conventions). */
const TARGET_ATTRIBUTE: ReadonlyMap<string, string> = new Map([
  ['tools/call', 'gen_ai.tool.name'],
  ['prompts/get', 'gen_ai.prompt.name'],
  ['resources/read', 'mcp.resource.uri'],
]);

/**
 * One request's SERVER span, continuing the client's W3C trace context, and the span of its upstream
 * call. Attributes come from what the access line records, never from headers: no token, proof, cookie
 * or Authorization value can reach a span, and the subject only with `tracing.include_subject`.
 */
export class RequestTrace implements SpanParent {
  open = true;
  readonly #scope: TraceScope;
  readonly #span: Span;
  readonly #context: Context;
  #upstream: Span | undefined = undefined;

  constructor(scope: TraceScope, req: IncomingMessage) {
    this.#scope = scope;
    const parent = scope.propagator.extract(ROOT_CONTEXT, req.headers, defaultTextMapGetter);
    this.#span = scope.tracer.startSpan(req.method ?? 'HTTP', { kind: SpanKind.SERVER, attributes: { 'http.request.method': req.method } }, parent);
    this.#context = trace.setSpan(parent, this.#span);
  }

  child(name: string, kind: SpanKind, attributes?: Attributes): Span {
    return this.#scope.tracer.startSpan(name, { kind, attributes }, this.#context);
  }

  /** Starts the upstream call's span; the headers that name it (`traceparent`, `tracestate`) go upstream. */
  upstreamCall(method: string | undefined): Record<string, string> {
    const span = this.child(`upstream ${method ?? ''}`.trimEnd(), SpanKind.CLIENT, { ...this.#scope.upstream, 'http.request.method': method });
    this.#upstream = span;
    const headers: Record<string, string> = {};
    this.#scope.propagator.inject(trace.setSpan(this.#context, span), headers, defaultTextMapSetter);
    return headers;
  }

  /** Ends the upstream call's span and the request's, once the response has closed. */
  end(method: string | undefined, status: number, settled: SettledRequest): void {
    this.open = false;
    const { upstream, principal, rpc } = settled;
    if (this.#upstream) {
      if (upstream?.upstreamStatus !== undefined) this.#upstream.setAttribute('http.response.status_code', upstream.upstreamStatus);
      if (upstream?.failure) {
        this.#upstream.setAttribute('error.type', upstream.failure);
        this.#upstream.setStatus({ code: SpanStatusCode.ERROR });
      }
      this.#upstream.end();
    }
    const span = this.#span;
    const route = OWN_ROUTES.has(settled.outcome) || settled.path === this.#scope.resourcePath ? settled.path : undefined;
    if (route) {
      span.updateName(`${method} ${route}`);
      span.setAttribute('http.route', route);
    }
    if (settled.path) span.setAttribute('url.path', settled.path);
    // 0: the client left before any answer.
    if (status > 0) span.setAttribute('http.response.status_code', status);
    span.setAttribute('mcp_warden.outcome', settled.outcome);
    span.setAttribute('mcp_warden.request_id', settled.requestId);
    if (settled.reason) span.setAttribute('mcp_warden.refusal_reason', settled.reason);
    if (principal) {
      span.setAttribute('mcp_warden.principal.issuer', principal.issuer);
      if (principal.clientId !== undefined) span.setAttribute('mcp_warden.principal.client_id', principal.clientId);
      if (this.#scope.includeSubject && principal.subject !== undefined) span.setAttribute('user.id', principal.subject);
    }
    const rpcMethod = rpc?.methods[0];
    if (rpcMethod !== undefined) {
      span.setAttribute('mcp.method.name', rpcMethod);
      const targetAttribute = TARGET_ATTRIBUTE.get(rpcMethod);
      if (targetAttribute && rpc?.target !== undefined) span.setAttribute(targetAttribute, rpc.target);
    }
    if (rpc && rpc.methods.length > 1) span.setAttribute('mcp_warden.rpc.batch_size', rpc.methods.length);
    if (upstream?.stream) span.setAttribute('mcp_warden.upstream.stream', true);
    // A server span is an error only when the server failed (5xx); a refusal is the proxy doing its job.
    if (status >= 500) {
      span.setAttribute('error.type', settled.reason ?? upstream?.failure ?? String(status));
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
    span.end();
  }
}
