import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMcpServer } from '../../demo/mcp-server.ts';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver.ts';
import { INITIALIZE, MCP_HEADERS, startStack, waitFor, type Stack } from '../helpers/stack.ts';
import { startStdioStack, testServer, textOf } from '../helpers/stdio-stack.ts';
import { claims, forge, validToken } from '../security/helpers.ts';

// Spans go out 20 ms after they end rather than 5 s, so each test sees its own (the standard variable, read at start).
process.env.OTEL_BSP_SCHEDULE_DELAY = '20';

const SERVER = 2;
const CLIENT = 3;
const UPSTREAM = 'https://legacy-api.example.com';

const traceIdOf = (n: number) => n.toString(16).padStart(32, 'a');
const CLIENT_SPAN = '00f067aa0ba902b7';
const traceparentOf = (traceId: string) => `00-${traceId}-${CLIENT_SPAN}-01`;

const tracingTo = (endpoint: string, extra: Record<string, unknown> = {}) => (base: Record<string, unknown>) => ({ ...base, tracing: { endpoint, ...extra } });

async function spansOf(receiver: OtlpReceiver, traceId: string, count: number): Promise<ReceivedSpan[]> {
  await waitFor(() => receiver.spans.filter((span) => span.traceId === traceId).length >= count, `${count} spans of trace ${traceId}`);
  return receiver.spans.filter((span) => span.traceId === traceId);
}

/** Every attribute of every span, resource ones too: none may hold a token, a Bearer value or an Authorization header. */
function expectNoSecrets(spans: readonly ReceivedSpan[], tokens: readonly string[]): void {
  const values = spans.flatMap((span) => [span.name, ...Object.values(span.attributes), ...Object.values(span.resource)].map(String));
  expect(values.length).toBeGreaterThan(0);
  for (const value of values) {
    expect(value).not.toMatch(/bearer|dpop |eyJ[A-Za-z0-9_-]{8,}/i);
    for (const token of tokens) expect(value).not.toContain(token);
  }
}

const post = (stack: Stack, headers: Record<string, string>, body = INITIALIZE) => fetch(stack.mcpUrl, { method: 'POST', headers: { ...MCP_HEADERS, ...headers }, body });

describe('tracing a JWT stack over OTLP/HTTP', () => {
  let receiver: OtlpReceiver;
  let stack: Stack;
  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    stack = await startStack((base) => ({ ...tracingTo(receiver.url)(base), tokens: { ...(base.tokens as object), jwks: { cooldown: '0s' } } }));
  });
  afterAll(async () => {
    await stack?.close();
    await receiver?.close();
  });

  it('continues the client’s traceparent: the server span, the upstream call under it, and the upstream told of that call', async () => {
    const traceId = traceIdOf(1);
    const token = await validToken(stack);
    const response = await post(stack, { authorization: `Bearer ${token}`, traceparent: traceparentOf(traceId), tracestate: 'congo=t61rcWkgMzE', 'x-request-id': 'trace-1' });
    expect(response.status).toBe(200);
    await response.arrayBuffer();
    const spans = await spansOf(receiver, traceId, 2);
    expect(spans).toHaveLength(2);
    const server = spans.find((span) => span.kind === SERVER)!;
    const upstream = spans.find((span) => span.kind === CLIENT)!;
    expect(server.parentSpanId).toBe(CLIENT_SPAN);
    expect(server.name).toBe('POST /mcp');
    expect(server.attributes).toMatchObject({
      'http.request.method': 'POST',
      'http.route': '/mcp',
      'http.response.status_code': 200,
      'mcp_warden.outcome': 'allowed',
      'mcp_warden.request_id': 'trace-1',
      'mcp.method.name': 'initialize',
      'mcp_warden.principal.issuer': stack.as.issuer,
      'mcp_warden.principal.client_id': 'c1',
    });
    expect(server.attributes['user.id']).toBeUndefined();
    expect(server.resource['service.name']).toBe('mcp-warden');
    expect(upstream.parentSpanId).toBe(server.spanId);
    expect(upstream.attributes).toMatchObject({ 'http.response.status_code': 200, 'mcp_warden.upstream.kind': 'http' });
    const received = stack.mcp.requests.find((request) => request.headers['x-request-id'] === 'trace-1')!;
    expect(received.headers.traceparent).toBe(`00-${traceId}-${upstream.spanId}-01`);
    expect(received.headers.tracestate).toBe('congo=t61rcWkgMzE');
    expect(received.rawHeaders.filter((name) => name.toLowerCase() === 'traceparent')).toHaveLength(1);
    expectNoSecrets(spans, [token]);
  });

  it('names the tool a tools/call asks for', async () => {
    const traceId = traceIdOf(2);
    const token = await validToken(stack);
    const body = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { text: 'hi' } } });
    await (await post(stack, { authorization: `Bearer ${token}`, traceparent: traceparentOf(traceId) }, body)).arrayBuffer();
    const server = (await spansOf(receiver, traceId, 2)).find((span) => span.kind === SERVER)!;
    expect(server.attributes).toMatchObject({ 'mcp.method.name': 'tools/call', 'gen_ai.tool.name': 'echo' });
  });

  it('records a refusal with its reason, and nothing upstream', async () => {
    const traceId = traceIdOf(3);
    const response = await post(stack, { authorization: 'Bearer not-a-jwt-at-all', traceparent: traceparentOf(traceId) });
    expect(response.status).toBe(401);
    const spans = await spansOf(receiver, traceId, 1);
    expect(spans).toHaveLength(1);
    expect(spans[0]!.attributes).toMatchObject({ 'http.response.status_code': 401, 'mcp_warden.outcome': 'denied', 'mcp_warden.refusal_reason': 'malformed_token' });
    expectNoSecrets(spans, ['not-a-jwt-at-all']);
  });

  it('starts a trace of its own for a request without traceparent', async () => {
    const token = await validToken(stack);
    await (await post(stack, { authorization: `Bearer ${token}`, 'x-request-id': 'no-parent' })).arrayBuffer();
    await waitFor(() => receiver.spans.some((span) => span.attributes['mcp_warden.request_id'] === 'no-parent'), 'the server span');
    const server = receiver.spans.find((span) => span.attributes['mcp_warden.request_id'] === 'no-parent')!;
    expect(server.parentSpanId).toBeUndefined();
    const received = stack.mcp.requests.find((request) => request.headers['x-request-id'] === 'no-parent')!;
    expect(received.headers.traceparent).toMatch(new RegExp(`^00-${server.traceId}-[0-9a-f]{16}-01$`));
  });

  it('shows a key fetch a request caused (an unknown kid) as a child of its span', async () => {
    const traceId = traceIdOf(4);
    const token = await forge(stack, claims(stack), { kid: 'a-kid-the-issuer-never-had' });
    const response = await post(stack, { authorization: `Bearer ${token}`, traceparent: traceparentOf(traceId) });
    expect(response.status).toBe(401);
    const spans = await spansOf(receiver, traceId, 2);
    const server = spans.find((span) => span.kind === SERVER)!;
    const fetch = spans.find((span) => span.name === 'jwks fetch')!;
    expect(fetch).toMatchObject({ kind: CLIENT, parentSpanId: server.spanId });
    expect(server.attributes['mcp_warden.refusal_reason']).toBe('unknown_key');
    expectNoSecrets(spans, [token]);
  });
});

describe('tracing the calls a request makes to its authorization server', () => {
  let receiver: OtlpReceiver;
  beforeAll(async () => {
    receiver = await startOtlpReceiver();
  });
  afterAll(async () => {
    await receiver?.close();
  });

  it('shows an introspection call as a child of the request that made it', async () => {
    const stack = await startStack((base, as) => {
      process.env.WARDEN_TEST_TRACING_INTROSPECTION_SECRET = as.introspectionClient.client_secret;
      return {
        ...tracingTo(receiver.url)(base),
        authorization_servers: [{ issuer: as.issuer, verify_jwt: false, introspection: { client_id: as.introspectionClient.client_id, client_secret: '${env:WARDEN_TEST_TRACING_INTROSPECTION_SECRET}' } }],
      };
    }, { format: 'opaque' });
    try {
      const traceId = traceIdOf(5);
      const token = await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:read' });
      expect((await post(stack, { authorization: `Bearer ${token}`, traceparent: traceparentOf(traceId) })).status).toBe(200);
      const spans = await spansOf(receiver, traceId, 3);
      const server = spans.find((span) => span.kind === SERVER)!;
      expect(spans.find((span) => span.name === 'token introspection')).toMatchObject({ kind: CLIENT, parentSpanId: server.spanId, attributes: { 'mcp_warden.issuer': stack.as.issuer } });
      expectNoSecrets(spans, [token, stack.as.introspectionClient.client_secret]);
    } finally {
      await stack.close();
    }
  });

  it('shows a token exchange as a child of the request that needed it', async () => {
    const stack = await startStack((base, as) => {
      process.env.WARDEN_TEST_TRACING_EXCHANGE_SECRET = as.upstreamClients!.basic.client_secret;
      const credential = { type: 'token_exchange', issuer: as.issuer, client_id: as.upstreamClients!.basic.client_id, client_secret: '${env:WARDEN_TEST_TRACING_EXCHANGE_SECRET}', resource: UPSTREAM };
      return { ...tracingTo(receiver.url)(base), upstream: { url: (base.upstream as { url: string }).url, credential } };
    }, { upstream: { resources: { [UPSTREAM]: { scopes: ['legacy:read'] } } } });
    try {
      const traceId = traceIdOf(6);
      const token = await validToken(stack, { sub: 'alice' });
      expect((await post(stack, { authorization: `Bearer ${token}`, traceparent: traceparentOf(traceId) })).status).toBe(200);
      const spans = await spansOf(receiver, traceId, 3);
      const server = spans.find((span) => span.kind === SERVER)!;
      expect(spans.find((span) => span.name === 'token request')).toMatchObject({
        kind: CLIENT,
        parentSpanId: server.spanId,
        attributes: { 'mcp_warden.grant_type': 'urn:ietf:params:oauth:grant-type:token-exchange' },
      });
      const upstreamBearer = stack.mcp.requests.at(-1)!.headers.authorization!;
      expectNoSecrets(spans, [token, upstreamBearer.slice(7), stack.as.upstreamClients!.basic.client_secret]);
    } finally {
      await stack.close();
    }
  });
});

describe('a reload', () => {
  it('names the new upstream on the spans of the requests after it', async () => {
    const receiver = await startOtlpReceiver();
    const stack = await startStack(tracingTo(receiver.url));
    const second = await startMcpServer();
    try {
      const next = { ...stack.config, upstream: { ...stack.config.upstream, url: second.origin } };
      expect(await stack.warden.reload(next)).toMatchObject({ ok: true });
      const traceId = traceIdOf(8);
      expect((await post(stack, { authorization: `Bearer ${await validToken(stack)}`, traceparent: traceparentOf(traceId) })).status).toBe(200);
      const upstream = (await spansOf(receiver, traceId, 2)).find((span) => span.kind === CLIENT)!;
      expect(upstream.attributes['server.port']).toBe(Number(new URL(second.origin).port));
      expect(second.requests.at(-1)!.headers.traceparent).toBe(`00-${traceId}-${upstream.spanId}-01`);
    } finally {
      await stack.close();
      await second.close();
      await receiver.close();
    }
  });
});

describe('a stdio upstream', () => {
  it('gives the child the spawning request’s trace context as TRACEPARENT', async () => {
    const receiver = await startOtlpReceiver();
    const stack = await startStdioStack({ command: testServer() }, { tracing: { endpoint: receiver.url } });
    try {
      const traceId = traceIdOf(7);
      const token = await validToken(stack, { sub: 'alice' });
      const traced = await connectWithTokenAndTrace(stack.mcpUrl, token, traceparentOf(traceId));
      try {
        const env = (JSON.parse(textOf(await traced.client.callTool({ name: 'whoami', arguments: {} }))) as { env: Record<string, string> }).env;
        const spans = await spansOf(receiver, traceId, 2);
        const initialize = spans.find((span) => span.kind === CLIENT && span.parentSpanId === spans.find((s) => s.kind === SERVER && s.attributes['mcp.method.name'] === 'initialize')?.spanId);
        expect(env.TRACEPARENT).toBe(`00-${traceId}-${initialize!.spanId}-01`);
        expect(initialize!.attributes['mcp_warden.upstream.kind']).toBe('stdio');
      } finally {
        await traced.close();
      }
    } finally {
      await stack.close();
      await receiver.close();
    }
  });
});

/** The SDK client, every request of it carrying the same client traceparent. */
async function connectWithTokenAndTrace(mcpUrl: string, token: string, traceparent: string) {
  const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
  const { StreamableHTTPClientTransport } = await import('@modelcontextprotocol/sdk/client/streamableHttp.js');
  const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { requestInit: { headers: { authorization: `Bearer ${token}`, traceparent } } });
  const client = new Client({ name: 'tracing-test', version: '1.0.0' });
  await client.connect(transport);
  return { client, close: () => client.close() };
}
