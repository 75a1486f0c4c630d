// The 2026-07-28 wire end to end with the SDK 2.x packages on both sides: @modelcontextprotocol/client
// talks to a real @modelcontextprotocol/server (test/fixtures/sdk2-server.ts), once directly and once
// through mcp-warden with a bearer token. Every exchange must end the same way both times, and the
// routing headers the client sends (Mcp-Method, Mcp-Name, MCP-Protocol-Version) must reach the server.
// The OAuth flow itself with a 2.x client is covered by the compatibility tests (test/compat).
import { Client, StreamableHTTPClientTransport, type Progress } from '@modelcontextprotocol/client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NON_ASCII_PROMPT, PROGRESS_STEPS, SDK2_RESOURCE, SDK2_SERVER_INFO, startSdk2Server, type RecordedRequest, type Sdk2Server } from '../fixtures/sdk2-server.ts';
import { ARGUMENT_SENTINEL, startStack, waitFor, type Stack } from '../helpers/stack.ts';

const MODERN = '2026-07-28';

let fixture: Sdk2Server;
let stack: Stack;
let token: string;
const clients: Client[] = [];

beforeEach(async () => {
  fixture = await startSdk2Server();
  stack = await startStack((base) => ({ ...base, upstream: { url: fixture.origin } }));
  token = await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:read mcp:write' });
});

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map((client) => client.close()));
  await stack?.close();
  await fixture?.close();
});

type Route = 'direct' | 'through mcp-warden';
const ROUTES: readonly Route[] = ['direct', 'through mcp-warden'];

/**
 * A 2.x client pinned to 2026-07-28, connected straight to the fixture or to mcp-warden with the token in
 * its headers. It answers elicitations (embedded in input_required results) with the name Ada.
 */
async function connect(route: Route): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const client = new Client({ name: 'sdk2-wire-test', version: '1.0.0' }, { versionNegotiation: { mode: { pin: MODERN } }, capabilities: { elicitation: {} } });
  client.setRequestHandler('elicitation/create', async () => ({ action: 'accept', content: { name: 'Ada' } }));
  const transport =
    route === 'direct'
      ? new StreamableHTTPClientTransport(new URL(fixture.url))
      : new StreamableHTTPClientTransport(new URL(stack.mcpUrl), { requestInit: { headers: { authorization: `Bearer ${token}` } } });
  await client.connect(transport);
  clients.push(client);
  return { client, transport };
}

/** The requests the fixture received since `from`. */
function seenSince(from: number): RecordedRequest[] {
  return fixture.requests.slice(from);
}

/** Runs the same exchange directly and through mcp-warden; returns both outcomes and what the fixture saw each time. */
async function both<T>(exchange: (client: Client) => Promise<T>): Promise<Record<Route, { result: T; seen: RecordedRequest[] }>> {
  const out = {} as Record<Route, { result: T; seen: RecordedRequest[] }>;
  for (const route of ROUTES) {
    const { client } = await connect(route);
    const from = fixture.requests.length;
    out[route] = { result: await exchange(client), seen: seenSince(from) };
  }
  return out;
}

describe('the SDK 2.x client and server on the 2026-07-28 wire, directly and through mcp-warden', () => {
  it('negotiates 2026-07-28 with server/discover through mcp-warden, carrying the token to mcp-warden but not to the server', async () => {
    for (const route of ROUTES) {
      const from = fixture.requests.length;
      const { client, transport } = await connect(route);
      expect(transport.protocolVersion, route).toBe(MODERN);
      expect(client.getServerVersion(), route).toEqual(SDK2_SERVER_INFO);
      expect(client.getServerCapabilities()?.tools, route).toBeDefined();
      expect(seenSince(from), route).toEqual([
        { httpMethod: 'POST', bodyMethod: 'server/discover', mcpMethod: 'server/discover', mcpName: undefined, protocolVersion: MODERN, authorization: false },
      ]);
    }
  });

  it('lists tools with an Mcp-Method header, and the list is the same through mcp-warden', async () => {
    const runs = await both((client) => client.listTools());
    expect(runs['through mcp-warden'].result).toEqual(runs.direct.result);
    expect(runs.direct.result.tools.map((tool) => tool.name).sort()).toEqual(['add', 'ask_name', 'count_slowly', 'echo', 'set_region']);
    for (const route of ROUTES) {
      expect(runs[route].seen, route).toEqual([
        { httpMethod: 'POST', bodyMethod: 'tools/list', mcpMethod: 'tools/list', mcpName: undefined, protocolVersion: MODERN, authorization: false },
      ]);
    }
  });

  it('calls a tool with Mcp-Name and gets its structured result through mcp-warden', async () => {
    const runs = await both((client) => client.callTool({ name: 'add', arguments: { a: 2, b: 40 } }));
    expect(runs['through mcp-warden'].result).toEqual(runs.direct.result);
    expect(runs.direct.result.structuredContent).toEqual({ sum: 42 });
    const echoed = await both((client) => client.callTool({ name: 'echo', arguments: { text: ARGUMENT_SENTINEL } }));
    expect(echoed['through mcp-warden'].result.content).toEqual([{ type: 'text', text: ARGUMENT_SENTINEL }]);
    for (const route of ROUTES) {
      expect(runs[route].seen, route).toEqual([
        { httpMethod: 'POST', bodyMethod: 'tools/call', mcpMethod: 'tools/call', mcpName: 'add', protocolVersion: MODERN, authorization: false },
      ]);
    }
  });

  it('streams every progress notification of a tool call before its result through mcp-warden', async () => {
    const runs = await both(async (client) => {
      const progress: Progress[] = [];
      const result = await client.callTool({ name: 'count_slowly', arguments: {} }, { onprogress: (update) => progress.push(update) });
      return { result, progress };
    });
    expect(runs['through mcp-warden'].result).toEqual(runs.direct.result);
    expect(runs.direct.result.progress).toEqual(
      Array.from({ length: PROGRESS_STEPS }, (_, i) => ({ progress: i + 1, total: PROGRESS_STEPS, message: `step ${i + 1}` })),
    );
    expect(runs.direct.result.result.content).toEqual([{ type: 'text', text: `counted to ${PROGRESS_STEPS}` }]);
    for (const route of ROUTES) expect(runs[route].seen.map((request) => [request.mcpMethod, request.mcpName]), route).toEqual([['tools/call', 'count_slowly']]);
  });

  it('passes an x-mcp-header parameter outside ASCII as a Base64-encoded Mcp-Param header through mcp-warden', async () => {
    // The client learns which parameters go in headers from tools/list, so it lists first.
    const runs = await both(async (client) => {
      await client.listTools();
      return client.callTool({ name: 'set_region', arguments: { region: 'Zürich' } });
    });
    expect(runs['through mcp-warden'].result).toEqual(runs.direct.result);
    expect(runs.direct.result.content).toEqual([{ type: 'text', text: 'region Zürich' }]);
    const encoded = `=?base64?${Buffer.from('Zürich').toString('base64')}?=`;
    for (const route of ROUTES) {
      expect(runs[route].seen.at(-1), route).toEqual({
        httpMethod: 'POST',
        bodyMethod: 'tools/call',
        mcpMethod: 'tools/call',
        mcpName: 'set_region',
        protocolVersion: MODERN,
        mcpParams: { 'mcp-param-region': encoded },
        authorization: false,
      });
    }
  });

  it('completes a multi-round tool call (input_required, then the retry with the answer) through mcp-warden', async () => {
    const runs = await both((client) => client.callTool({ name: 'ask_name', arguments: {} }));
    expect(runs['through mcp-warden'].result).toEqual(runs.direct.result);
    expect(runs.direct.result.content).toEqual([{ type: 'text', text: 'Hello, Ada!' }]);
    for (const route of ROUTES) {
      expect(runs[route].seen.map((request) => [request.mcpMethod, request.mcpName]), route).toEqual([
        ['tools/call', 'ask_name'],
        ['tools/call', 'ask_name'],
      ]);
    }
  });

  it('gets a prompt named outside ASCII, its Mcp-Name Base64-encoded, through mcp-warden', async () => {
    const runs = await both((client) => client.getPrompt({ name: NON_ASCII_PROMPT }));
    expect(runs['through mcp-warden'].result).toEqual(runs.direct.result);
    expect(runs.direct.result.messages).toEqual([{ role: 'user', content: { type: 'text', text: 'Sag Grüß Gott' } }]);
    const encoded = `=?base64?${Buffer.from(NON_ASCII_PROMPT).toString('base64')}?=`;
    for (const route of ROUTES) expect(runs[route].seen.map((request) => [request.mcpMethod, request.mcpName]), route).toEqual([['prompts/get', encoded]]);
  });

  it('gets a prompt with Mcp-Name through mcp-warden', async () => {
    const runs = await both((client) => client.getPrompt({ name: 'greet', arguments: { name: 'Ada' } }));
    expect(runs['through mcp-warden'].result).toEqual(runs.direct.result);
    expect(runs.direct.result.messages).toEqual([{ role: 'user', content: { type: 'text', text: 'Say hello to Ada' } }]);
    for (const route of ROUTES) {
      expect(runs[route].seen, route).toEqual([
        { httpMethod: 'POST', bodyMethod: 'prompts/get', mcpMethod: 'prompts/get', mcpName: 'greet', protocolVersion: MODERN, authorization: false },
      ]);
    }
  });

  it('reads a resource with its URI as Mcp-Name through mcp-warden', async () => {
    const runs = await both((client) => client.readResource({ uri: SDK2_RESOURCE.uri }));
    expect(runs['through mcp-warden'].result).toEqual(runs.direct.result);
    expect(runs.direct.result.contents).toEqual([{ uri: SDK2_RESOURCE.uri, mimeType: 'text/plain', text: SDK2_RESOURCE.text }]);
    for (const route of ROUTES) {
      expect(runs[route].seen, route).toEqual([
        { httpMethod: 'POST', bodyMethod: 'resources/read', mcpMethod: 'resources/read', mcpName: SDK2_RESOURCE.uri, protocolVersion: MODERN, authorization: false },
      ]);
    }
  });

  it('holds a subscriptions/listen stream open through mcp-warden and delivers change notifications on it', async () => {
    for (const route of ROUTES) {
      const { client } = await connect(route);
      let changes = 0;
      client.setNotificationHandler('notifications/tools/list_changed', () => {
        changes += 1;
      });
      const from = fixture.requests.length;
      const subscription = await client.listen({ toolsListChanged: true });
      expect(subscription.honoredFilter, route).toEqual({ toolsListChanged: true });
      expect(seenSince(from)[0], route).toEqual({ httpMethod: 'POST', bodyMethod: 'subscriptions/listen', mcpMethod: 'subscriptions/listen', mcpName: undefined, protocolVersion: MODERN, authorization: false });
      fixture.handler.notify.toolsChanged();
      await waitFor(() => changes === 1, `${route}: tools/list_changed`);
      fixture.handler.notify.toolsChanged();
      await waitFor(() => changes === 2, `${route}: a second tools/list_changed`);
      await subscription.close();
      expect(await subscription.closed, route).toBe('local');
    }
  });
});
