import { createHash } from 'node:crypto';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { extractWWWAuthenticateParams } from '@modelcontextprotocol/sdk/client/auth.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectWithOAuth, type OAuthConnection } from '../../demo/oauth-client.ts';
import { INITIALIZE, MCP_HEADERS, startStack, waitFor, type Stack } from '../helpers/stack.ts';

const ALL_SCOPES = ['mcp:read', 'mcp:write', 'mcp:admin'];
let stack: Stack;

beforeAll(async () => {
  stack = await startStack(
    (base) => ({
      ...base,
      resource: { ...(base.resource as object), scopes_supported: ['mcp:read', 'mcp:write'] },
      tokens: { ...(base.tokens as object), required_scopes: ['mcp:read'] },
      policy: {
        scope_hierarchy: { 'mcp:admin': ['mcp:write'], 'mcp:write': ['mcp:read'] },
        rules: [
          { match: { method: 'tools/call', tool: 'delete_*' }, scopes: ['mcp:admin'] },
          { match: { method: 'tools/call', tool: 'read_*' }, scopes: ['mcp:read'] },
          { match: { method: 'tools/list' }, scopes: ['mcp:read'] },
        ],
        max_body_bytes: 64 * 1024,
      },
      cors: { allowed_origins: ['https://app.example'] },
    }),
    { scopes: ALL_SCOPES },
  );
});
afterAll(async () => {
  await stack?.close();
});

const rpc = (id: number, method: string, params: Record<string, unknown> = {}) => ({ jsonrpc: '2.0', id, method, params });
const callTool = (id: number, name: string) => rpc(id, 'tools/call', { name, arguments: { path: '/etc/hosts' } });

/** Opens an MCP session with `token` the way a client would, and returns its headers. */
async function openSession(token: string): Promise<Record<string, string>> {
  const auth = { authorization: `Bearer ${token}` };
  const init = await fetch(stack.mcpUrl, { method: 'POST', headers: { ...MCP_HEADERS, ...auth }, body: INITIALIZE });
  expect(init.status).toBe(200);
  await init.text();
  const session = { ...auth, 'mcp-session-id': init.headers.get('mcp-session-id')!, 'mcp-protocol-version': '2025-11-25' };
  const initialized = await fetch(stack.mcpUrl, { method: 'POST', headers: { ...MCP_HEADERS, ...session }, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) });
  expect(initialized.status).toBe(202);
  return session;
}

const post = (headers: Record<string, string>, body: unknown) =>
  fetch(stack.mcpUrl, { method: 'POST', headers: { ...MCP_HEADERS, ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

async function resultText(response: Response): Promise<string | undefined> {
  const text = await response.text();
  const data = text.split('\n').find((line) => line.startsWith('data: ') && line.length > 6);
  return (JSON.parse(data ? data.slice(6) : text) as { result?: { content?: Array<{ text: string }> } }).result?.content?.[0]?.text;
}

describe('per-tool scopes with the official SDK client', () => {
  let connection: OAuthConnection;
  afterAll(async () => {
    await connection?.close();
  });

  it('lets mcp:read list tools and read, then steps up to mcp:admin on a 403 and succeeds', async () => {
    // Without a refresh token: SDK 1.32 would refresh instead of asking for the new scope (see oauth-client.ts).
    connection = await connectWithOAuth(stack.mcpUrl, { clientName: 'step-up', refreshTokens: false });
    expect(connection.accessToken()).toBeTruthy();
    await connection.client.listTools();
    const read = await connection.client.callTool({ name: 'read_file', arguments: { path: '/etc/hosts' } });
    expect(read.content).toEqual([{ type: 'text', text: 'contents of /etc/hosts' }]);

    const before = stack.mcp.requests.length;
    const denied = await connection.client.callTool({ name: 'delete_file', arguments: { path: '/etc/hosts' } }).catch((error: unknown) => error);
    expect(denied).toBeInstanceOf(UnauthorizedError);
    expect(stack.mcp.requests.length).toBe(before);
    const refusal = stack.logs.findLast((log) => log.msg === 'request' && log.status === 403);
    expect(refusal).toMatchObject({ reason: 'insufficient_scope' });

    await connection.reauthorize();
    const deleted = await connection.client.callTool({ name: 'delete_file', arguments: { path: '/etc/hosts' } });
    expect(deleted.content).toEqual([{ type: 'text', text: 'deleted /etc/hosts' }]);
    const scope = (await import('jose')).decodeJwt(connection.accessToken()).scope as string;
    expect(scope.split(' ').sort()).toEqual(['mcp:admin', 'mcp:read']);
  });

  it('challenges with error="insufficient_scope" and a scope holding what the token has and mcp:admin', async () => {
    const token = await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:read' });
    const response = await post({ authorization: `Bearer ${token}` }, callTool(1, 'delete_file'));
    expect(response.status).toBe(403);
    const params = extractWWWAuthenticateParams(response);
    expect(params.error).toBe('insufficient_scope');
    expect(params.scope).toBe('mcp:read mcp:admin');
  });
});

describe('the scope of an insufficient_scope challenge', () => {
  it('names the granted scopes too by default, so a client that re-authorizes with it keeps them', async () => {
    const token = await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:read mcp:write' });
    const response = await post({ authorization: `Bearer ${token}` }, callTool(20, 'delete_file'));
    expect(extractWWWAuthenticateParams(response).scope).toBe('mcp:read mcp:write mcp:admin');
  });

  it('names only what the operation needs with challenge_scope: required', async () => {
    const strict = await startStack(
      (base) => ({
        ...base,
        tokens: { ...(base.tokens as object), required_scopes: ['mcp:read'] },
        listen: { ...(base.listen as object), allowed_hosts: [`127.0.0.1:${(base.listen as { port: number }).port}`] },
        policy: { challenge_scope: 'required', rules: [{ match: { method: 'tools/call', tool: 'delete_*' }, scopes: ['mcp:admin'] }] },
      }),
      { scopes: ALL_SCOPES },
    );
    try {
      const token = await strict.as.mintToken({ resource: strict.mcpUrl, scope: 'mcp:read mcp:write' });
      const response = await fetch(strict.mcpUrl, { method: 'POST', headers: { ...MCP_HEADERS, authorization: `Bearer ${token}` }, body: JSON.stringify(callTool(21, 'delete_file')) });
      expect(extractWWWAuthenticateParams(response).scope).toBe('mcp:read mcp:admin');
      // DNS rebinding: a Host outside listen.allowed_hosts is misdirected, metadata included.
      const { request } = await import('node:http');
      const status = await new Promise<number>((resolve, reject) => {
        const req = request(new URL('/.well-known/oauth-protected-resource/mcp', strict.mcpUrl), { headers: { host: 'evil.example' } }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        req.on('error', reject);
        req.end();
      });
      expect(status).toBe(421);
    } finally {
      await strict.close();
    }
  });
});

describe('MCP-aware authorization', () => {
  it('honours the scope hierarchy: mcp:admin passes rules that need mcp:read', async () => {
    const token = await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:admin' });
    const session = await openSession(token);
    expect(await resultText(await post(session, callTool(2, 'read_file')))).toBe('contents of /etc/hosts');
    expect((await post(session, rpc(3, 'tools/list'))).status).toBe(200);
  });

  it('refuses a batch with one forbidden call whole, and the upstream receives nothing', async () => {
    const token = await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:read' });
    const session = await openSession(token);
    const before = stack.mcp.requests.length;
    const response = await post(session, [callTool(4, 'read_file'), callTool(5, 'delete_file')]);
    expect(response.status).toBe(403);
    expect(extractWWWAuthenticateParams(response).scope).toBe('mcp:read mcp:admin');
    expect(stack.mcp.requests.length).toBe(before);
  });

  it('refuses an Mcp-Name header that disagrees with the body with 400 and the JSON-RPC HeaderMismatch error (SEP-2243)', async () => {
    const token = await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:admin' });
    const before = stack.mcp.requests.length;
    const response = await post({ authorization: `Bearer ${token}`, 'mcp-method': 'tools/call', 'mcp-name': 'read_file' }, callTool(6, 'delete_file'));
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ jsonrpc: '2.0', id: 6, error: { code: -32020 } });
    expect(stack.mcp.requests.length).toBe(before);
  });

  it("refuses user B's valid token with user A's session, as an unknown session, and forwards nothing", async () => {
    const alice = await connectWithOAuth(stack.mcpUrl, { clientName: 'alice' });
    try {
      const sessionId = alice.transport.sessionId!;
      const bob = await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:admin' });
      const before = stack.mcp.requests.length;
      const hijack = await post({ authorization: `Bearer ${bob}`, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-11-25' }, callTool(7, 'read_file'));
      expect(hijack.status).toBe(404);
      const unknown = await post({ authorization: `Bearer ${bob}`, 'mcp-session-id': 'made-up', 'mcp-protocol-version': '2025-11-25' }, callTool(8, 'read_file'));
      expect(unknown.status).toBe(404);
      expect(await hijack.json()).toEqual(await unknown.json());
      expect(stack.mcp.requests.length).toBe(before);
      const own = await alice.client.callTool({ name: 'read_file', arguments: { path: '/tmp/a' } });
      expect(own.content).toEqual([{ type: 'text', text: 'contents of /tmp/a' }]);
    } finally {
      await alice.close();
    }
  });

  it('refuses a disallowed Origin with 403 before looking at the token, and answers an allowed preflight itself', async () => {
    const token = await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:read' });
    const before = stack.mcp.requests.length;
    const evil = await post({ authorization: `Bearer ${token}`, origin: 'https://evil.example' }, rpc(9, 'tools/list'));
    expect(evil.status).toBe(403);
    expect(evil.headers.get('www-authenticate')).toBeNull();
    expect((await post({ origin: 'https://evil.example' }, rpc(10, 'tools/list'))).status).toBe(403);
    const preflight = await fetch(stack.mcpUrl, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type, mcp-session-id' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(preflight.headers.get('access-control-allow-headers')).toMatch(/Authorization/);
    expect(preflight.headers.get('access-control-expose-headers')).toBe('WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version, DPoP-Nonce');
    expect(stack.mcp.requests.length).toBe(before);
    const allowed = await post({ authorization: `Bearer ${token}`, origin: 'https://app.example' }, INITIALIZE);
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get('access-control-expose-headers')).toBe('WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version, DPoP-Nonce');
    await allowed.body?.cancel();
  });

  it('forwards an inspected body byte for byte', async () => {
    const token = await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:read' });
    const session = await openSession(token);
    const body = '{ "params" : {"arguments":{"path":"/caf\\u00e9/\u00fcber"}, "name":"read_file"},\n\t"method":"tools/call", "id": 11, "jsonrpc":"2.0" }  ';
    const before = stack.mcp.requests.length;
    const response = await post(session, body);
    expect(await resultText(response)).toBe('contents of /café/über');
    const received = stack.mcp.requests.slice(before).find((request) => request.method === 'POST');
    const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
    expect(sha(received!.body!)).toBe(sha(Buffer.from(body)));
  });

  it('refuses a body over max_body_bytes with 413 and a non-JSON POST with 415', async () => {
    const token = await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:read' });
    const before = stack.mcp.requests.length;
    const big = await post({ authorization: `Bearer ${token}` }, { ...callTool(12, 'read_file'), pad: 'x'.repeat(70_000) });
    expect(big.status).toBe(413);
    const plain = await fetch(stack.mcpUrl, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain' }, body: JSON.stringify(callTool(13, 'delete_file')) });
    expect(plain.status).toBe(415);
    const garbage = await post({ authorization: `Bearer ${token}` }, '{"jsonrpc":');
    expect(garbage.status).toBe(400);
    expect(stack.mcp.requests.length).toBe(before);
  });

  it('answers an oversized body sent without a length (chunked) with 413 too, not a reset', async () => {
    const token = await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:read' });
    const before = stack.mcp.requests.length;
    const { request } = await import('node:http');
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(stack.mcpUrl, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      // The proxy stops reading at the cap and closes after its answer: a late write error is expected.
      req.on('error', reject);
      for (let i = 0; i < 8; i++) req.write('x'.repeat(16_384));
      req.end();
    });
    expect(status).toBe(413);
    expect(stack.mcp.requests.length).toBe(before);
  });

  it('takes a client that leaves mid-body as an aborted request, not a proxy failure', async () => {
    const token = await stack.as.mintToken({ resource: stack.mcpUrl, scope: 'mcp:read' });
    const { connect } = await import('node:net');
    const { port } = new URL(stack.mcpUrl);
    const before = stack.mcp.requests.length;
    await new Promise<void>((resolve) => {
      const socket = connect(Number(port), '127.0.0.1', () => {
        socket.write(`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"jsonrpc":"2.0",`);
        setTimeout(() => socket.destroy(), 100);
      });
      socket.on('close', () => resolve());
    });
    await waitFor(() => stack.logs.some((log) => log.msg === 'request' && log.status === 0 && log.aborted === true && log.method === 'POST'), 'aborted access line');
    expect(stack.logs.some((log) => log.msg === 'request failed')).toBe(false);
    expect(stack.mcp.requests.length).toBe(before);
  });

  it('writes one audit line per judged message and counts decisions by method and rule', async () => {
    await waitFor(() => stack.logs.some((log) => log.msg === 'policy decision' && log.decision === 'deny'), 'a deny audit line');
    const deny = stack.logs.find((log) => log.msg === 'policy decision' && log.decision === 'deny' && log.target === 'delete_file');
    expect(deny).toMatchObject({ rpc_method: 'tools/call', rule: 'policy.rules[0]', missing_scopes: ['mcp:admin'], sub: expect.any(String) });
    const metrics = await (await fetch(`${stack.warden.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/mcp_warden_policy_decisions_total\{method="tools\/call",decision="deny",rule="policy\.rules\[0\]"\} [1-9]/);
    expect(metrics).toMatch(/mcp_warden_policy_decisions_total\{method="tools\/call",decision="allow",rule="policy\.rules\[1\]"\} [1-9]/);
  });
});
