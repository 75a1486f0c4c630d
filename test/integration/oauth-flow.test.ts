import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectWithOAuth, type OAuthConnection } from '../../demo/oauth-client.ts';
import { startStack, type Stack } from '../helpers/stack.ts';

describe('the official SDK client through mcp-warden, with a real OAuth flow', () => {
  let stack: Stack;
  let connection: OAuthConnection;

  beforeAll(async () => {
    stack = await startStack();
    connection = await connectWithOAuth(stack.mcpUrl, { clientName: 'e2e-test' });
  });
  afterAll(async () => {
    await connection?.close();
    await stack?.close();
  });

  it('discovers the metadata from the 401, registers, and gets an at+jwt for this resource', () => {
    expect(decodeProtectedHeader(connection.accessToken()).typ).toBe('at+jwt');
    const claims = decodeJwt(connection.accessToken());
    expect(claims.aud).toBe(stack.mcpUrl);
    expect(claims.iss).toBe(stack.as.issuer);
    expect(claims.scope).toBe('mcp:read mcp:write');
    const first = stack.logs.find((log) => log.msg === 'request');
    expect(first).toMatchObject({ status: 401, reason: 'missing_token' });
  });

  it('lists and calls tools of a server that has no auth code', async () => {
    const { tools } = await connection.client.listTools();
    expect(tools.map((tool) => tool.name).sort()).toEqual(['broadcast', 'countdown', 'delete_file', 'echo', 'read_file', 'slow']);
    const result = await connection.client.callTool({ name: 'echo', arguments: { text: 'through the warden' } });
    expect(result.content).toEqual([{ type: 'text', text: 'through the warden' }]);
  });

  it('delivers progress notifications sent 200 ms apart each within 50 ms', async () => {
    const delays: number[] = [];
    const result = await connection.client.callTool({ name: 'countdown', arguments: { steps: 5, interval_ms: 200 } }, undefined, {
      onprogress: (progress) => delays.push(Date.now() - Number(/sentAt=(\d+)/.exec(progress.message ?? '')?.[1])),
    });
    expect(result.content).toEqual([{ type: 'text', text: 'done' }]);
    expect(delays).toHaveLength(5);
    for (const delay of delays) expect(delay).toBeLessThan(50);
  });

  it('counts the standalone GET stream as the one stream left open once the calls are answered', async () => {
    await connection.client.callTool({ name: 'countdown', arguments: { steps: 1, interval_ms: 0 } });
    const openStreams = async () => /^mcp_warden_open_streams (\d+)$/m.exec(await (await fetch(`${stack.warden.adminUrl}/metrics`)).text())?.[1];
    const deadline = Date.now() + 2000;
    while ((await openStreams()) !== '1' && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await openStreams()).toBe('1');
  });

  it('passes DELETE and the session header through to end the session', async () => {
    const sessionId = connection.transport.sessionId;
    expect(sessionId).toBeTruthy();
    const before = stack.mcp.requests.length;
    await connection.transport.terminateSession();
    const deleted = stack.mcp.requests.slice(before).find((request) => request.method === 'DELETE');
    expect(deleted?.headers['mcp-session-id']).toBe(sessionId);
  });

  it('never shows the upstream the client token, and forwards nothing it refused', () => {
    expect(stack.mcp.requests.length).toBeGreaterThan(0);
    for (const request of stack.mcp.requests) {
      expect(request.headers.authorization).toBeUndefined();
      expect(JSON.stringify(request.rawHeaders)).not.toContain(connection.accessToken());
      expect(request.url).not.toContain('access_token');
    }
    const denied = new Set(stack.logs.filter((log) => log.msg === 'request' && log.outcome === 'denied').map((log) => log.request_id));
    expect(denied.size).toBeGreaterThan(0);
    const forwarded = stack.mcp.requests.map((request) => request.headers['x-request-id']);
    expect(forwarded.every((id) => typeof id === 'string' && !denied.has(id))).toBe(true);
  });
});
