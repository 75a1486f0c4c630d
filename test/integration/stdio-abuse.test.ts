import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validToken } from '../security/helpers.ts';
import type { Stack } from '../helpers/stack.ts';
import { alive, connectWithToken, initialize, startStdioStack, testServer, textOf } from '../helpers/stdio-stack.ts';

/** Requests that try to get a process, or another's process, without the right to it. */
describe('the stdio upstream, abused', () => {
  let stack: Stack;
  const spawned = () => stack.logs.filter((log) => log.msg === 'stdio server started').length;
  const post = (token: string, body: string, headers: Record<string, string> = {}) =>
    fetch(stack.mcpUrl, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers }, body });

  beforeAll(async () => {
    stack = await startStdioStack({ command: testServer() }, { policy: { max_body_bytes: 4096 } });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('starts nothing for a request that is not an initialize, a batch, a GET or a made-up session id', async () => {
    const token = await validToken(stack);
    const before = spawned();
    const call = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'whoami', arguments: {} } });
    expect((await post(token, call)).status).toBe(400);
    const twice = JSON.stringify([1, 2].map((id) => ({ jsonrpc: '2.0', id, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } })));
    expect((await post(token, twice)).status).toBe(400);
    expect((await fetch(stack.mcpUrl, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } })).status).toBe(400);
    const fixation = await post(token, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }), { 'mcp-session-id': 'chosen-by-the-attacker' });
    expect(fixation.status).toBe(404);
    expect(spawned()).toBe(before);
  });

  it('refuses a body over the bound (413) and one that is not JSON (415, 400) before any process starts', async () => {
    const token = await validToken(stack);
    const before = spawned();
    const big = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x'.repeat(8192), version: '1' } } });
    expect((await post(token, big)).status).toBe(413);
    expect((await post(token, 'initialize', { 'content-type': 'text/plain' })).status).toBe(415);
    expect((await post(token, '{"jsonrpc":')).status).toBe(400);
    expect(spawned()).toBe(before);
  });

  it('gives one principal exactly its 4 processes out of 20 concurrent initializes, the rest 429', async () => {
    const token = await validToken(stack, { sub: 'storm' });
    const before = spawned();
    const statuses = await Promise.all(Array.from({ length: 20 }, () => initialize(stack.mcpUrl, token).then(async (response) => (await response.body?.cancel(), response.status))));
    expect(statuses.filter((status) => status === 200)).toHaveLength(4);
    expect(statuses.filter((status) => status === 429)).toHaveLength(16);
    expect(spawned()).toBe(before + 4);
  });

  it('lets no other principal delete or use a session, and the session goes on', async () => {
    const owner = await connectWithToken(stack.mcpUrl, await validToken(stack, { sub: 'owner' }));
    const intruder = await validToken(stack, { sub: 'intruder' });
    const { pid } = JSON.parse(textOf(await owner.client.callTool({ name: 'whoami', arguments: {} }))) as { pid: number };
    const headers = { authorization: `Bearer ${intruder}`, 'mcp-session-id': owner.transport.sessionId!, 'mcp-protocol-version': '2025-11-25' };
    expect((await fetch(stack.mcpUrl, { method: 'DELETE', headers })).status).toBe(404);
    expect((await fetch(stack.mcpUrl, { headers: { ...headers, accept: 'text/event-stream' } })).status).toBe(404);
    const answer = JSON.stringify({ jsonrpc: '2.0', id: 0, result: { action: 'accept', content: { name: 'forged' } } });
    expect((await post(intruder, answer, { 'mcp-session-id': owner.transport.sessionId!, 'mcp-protocol-version': '2025-11-25' })).status).toBe(404);
    expect(alive(pid)).toBe(true);
    expect(textOf(await owner.client.callTool({ name: 'echo', arguments: { message: 'mine' } }))).toBe('mine');
    await owner.close();
  });
});

describe('the stdio upstream with session binding switched off', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStdioStack({ command: testServer() }, { sessions: { bind: false } });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('still keeps each process to the principal that started it: its own check, not the session table', async () => {
    const owner = await connectWithToken(stack.mcpUrl, await validToken(stack, { sub: 'owner' }));
    const intruder = await validToken(stack, { sub: 'intruder' });
    const call = JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'whoami', arguments: {} } });
    const stolen = await fetch(stack.mcpUrl, {
      method: 'POST',
      headers: { authorization: `Bearer ${intruder}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': owner.transport.sessionId!, 'mcp-protocol-version': '2025-11-25' },
      body: call,
    });
    expect(stolen.status).toBe(404);
    expect(await stolen.text()).not.toContain('pid');
    await owner.close();
  });
});
