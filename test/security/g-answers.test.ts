// Attempts to see what list filtering hides, or to call what policy.expose hides, by other roads than
// the plain request: colliding ids, ids of types an upstream may read differently, a resumed stream
// that replays a POST's answer, and the legacy HTTP+SSE transport that answers on the GET stream; and a
// filtered stream must still end the way an unfiltered one does.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CATALOG_RULES, CATALOG_SCOPES } from '../fixtures/catalog-mcp-server.ts';
import { type CatalogStack, startCatalogStack } from '../helpers/catalog-stack.ts';
import { namesOf, rpc } from '../helpers/rpc.ts';
import { MCP_HEADERS, startStack, type Stack } from '../helpers/stack.ts';
import { validToken } from './helpers.ts';
import { startFaultyServer } from '../helpers/jwks-server.ts';

const list = (id: unknown) => ({ jsonrpc: '2.0', id, method: 'tools/list', params: { cursor: 'all' } });

describe('request ids that could carry a list answer past its filter', () => {
  let ctx: CatalogStack;

  beforeAll(async () => {
    ctx = await startCatalogStack('json', { policy: { rules: CATALOG_RULES } });
    return ctx.close;
  });

  it.each([
    ['a batch whose list and call share an id', [list(1), { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'read_file', arguments: {} } }]],
    ['an id that is a boolean', list(true)],
    ['an id that is an object', list({ n: 1 })],
    ['an id member spelled ID, which a Go server reads as the id', { jsonrpc: '2.0', ID: 1, method: 'tools/list', params: { cursor: 'all' } }],
  ])('refuses %s with 400 and forwards nothing', async (_name, body) => {
    const { stack, read: token } = ctx;
    const catalog = ctx.catalog!;
    const before = catalog.received.length;
    const answer = await rpc(stack, token, body);
    expect(answer.status).toBe(400);
    expect(answer.raw).not.toContain('delete_everything');
    expect(catalog.received.length).toBe(before);
  });

  it('filters a list answered alongside other answers in a batch, by each id', async () => {
    const { stack, read: token } = ctx;
    const answer = await rpc(stack, token, [list('a'), list('b'), { jsonrpc: '2.0', id: 'c', method: 'tools/call', params: { name: 'read_file', arguments: {} } }]);
    expect(answer.messages).toHaveLength(3);
    for (const message of answer.messages.filter((candidate) => candidate.id !== 'c')) expect(namesOf(message, 'tools', 'name')).not.toContain('delete_everything');
    expect(answer.raw).not.toContain('delete_');
  });
});

describe('a resumed stream that replays a list answer', () => {
  let ctx: CatalogStack;

  beforeAll(async () => {
    // The stdio bridge keeps every session's events for resumption (Last-Event-ID): the replay must be filtered too.
    ctx = await startCatalogStack('stdio', { policy: { rules: CATALOG_RULES } });
    return ctx.close;
  });

  it('filters the answer on the GET that resumes a POST stream the client left', async () => {
    const { stack, read: token } = ctx;
    const headers = { ...MCP_HEADERS, authorization: `Bearer ${token}` };
    const init = await fetch(stack.mcpUrl, {
      method: 'POST',
      headers,
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'resumer', version: '1' } } }),
    });
    const session = init.headers.get('mcp-session-id')!;
    await init.text();
    const withSession = { ...headers, 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' };
    await fetch(stack.mcpUrl, { method: 'POST', headers: withSession, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) });
    // A slow list (it reports progress first): the client reads the first event's id and leaves.
    const controller = new AbortController();
    const post = await fetch(stack.mcpUrl, { method: 'POST', headers: withSession, signal: controller.signal, body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list', params: { cursor: 'all', _meta: { progressToken: 'p' } } }) });
    const reader = post.body!.getReader();
    let seen = '';
    while (!/^id: (.+)$/m.test(seen)) seen += new TextDecoder().decode((await reader.read()).value);
    const lastEventId = /^id: (.+)$/m.exec(seen)![1]!;
    controller.abort();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const resumed = await fetch(stack.mcpUrl, { headers: { ...withSession, accept: 'text/event-stream', 'last-event-id': lastEventId }, signal: AbortSignal.timeout(5000) });
    expect(resumed.status).toBe(200);
    const replay = resumed.body!.getReader();
    let replayed = '';
    while (!replayed.includes('"result"')) {
      const { value, done } = await replay.read();
      if (done) break;
      replayed += new TextDecoder().decode(value);
    }
    await replay.cancel();
    expect(replayed).toContain('read_file');
    expect(replayed).not.toContain('delete_everything');
  });
});

describe('the legacy HTTP+SSE transport, whose answers come on the GET stream', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack((base) => ({ ...base, policy: { rules: CATALOG_RULES } }), { resourcePath: '', scopes: CATALOG_SCOPES });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('filters tools/list for a caller who may not call every tool, and not for one who may', async () => {
    const listWith = async (scope: string) => {
      const token = await stack.as.mintToken({ resource: stack.mcpUrl, scope });
      const transport = new SSEClientTransport(new URL('/sse', stack.mcpUrl), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
        eventSourceInit: { fetch: (url, init) => fetch(url, { ...init, headers: { ...init?.headers, authorization: `Bearer ${token}` } }) },
      });
      const client = new Client({ name: 'legacy', version: '1' });
      await client.connect(transport);
      try {
        return (await client.listTools()).tools.map((tool) => tool.name);
      } finally {
        await client.close();
      }
    };
    expect(await listWith('mcp:read')).not.toContain('delete_file');
    expect(await listWith('mcp:read mcp:admin')).toContain('delete_file');
  });
});

describe('a filtered GET stream', () => {
  let upstream: Awaited<ReturnType<typeof startFaultyServer>>;
  let stack: Stack;

  beforeAll(async () => {
    // A stream that never pauses: whatever the proxy still holds when it ends the stream must not be written after the end.
    upstream = await startFaultyServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const timer = setInterval(() => res.write(`data: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { data: 'x'.repeat(2000) } })}\n\n`), 1);
      res.once('close', () => clearInterval(timer));
    });
    stack = await startStack((base) => ({ ...base, upstream: { url: upstream.url }, policy: { rules: CATALOG_RULES } }), { scopes: CATALOG_SCOPES });
  });
  afterAll(async () => {
    await stack?.close();
    await upstream?.close();
  });

  it('ends cleanly at its token’s expiry while events are flowing, and the proxy serves on', async () => {
    const token = await validToken(stack, { exp: Math.floor(Date.now() / 1000) + 2 });
    const stream = await fetch(stack.mcpUrl, { headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(8000) });
    expect(stream.status).toBe(200);
    const body = await stream.text();
    expect(body.endsWith('\n\n')).toBe(true);
    const fresh = await validToken(stack);
    const after = await fetch(stack.mcpUrl, { headers: { accept: 'text/event-stream', authorization: `Bearer ${fresh}` }, signal: AbortSignal.timeout(2000) }).catch((error: Error) => error);
    expect(after).toBeInstanceOf(Response);
    await (after as Response).body?.cancel();
  });
});
