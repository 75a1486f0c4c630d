import { CreateMessageRequestSchema, ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectWithOAuth, type OAuthConnection } from '../../demo/oauth-client.ts';
import { validToken } from '../security/helpers.ts';
import type { Stack } from '../helpers/stack.ts';
import { alive, connectWithToken, initialize, serverEverything, startStdioStack, testServer, textOf } from '../helpers/stdio-stack.ts';

describe('a stdio MCP server from npm (server-everything) behind mcp-warden, with the SDK client and a real OAuth flow', () => {
  let stack: Stack;
  let connection: OAuthConnection;
  const sampled: unknown[] = [];
  const elicited: unknown[] = [];

  beforeAll(async () => {
    stack = await startStdioStack({ command: serverEverything() });
    connection = await connectWithOAuth(stack.mcpUrl, {
      clientName: 'stdio-e2e',
      capabilities: { sampling: {}, elicitation: {} },
      prepare: (client) => {
        client.setRequestHandler(CreateMessageRequestSchema, async (request) => {
          sampled.push(request.params);
          return { model: 'test-model', role: 'assistant', content: { type: 'text', text: 'answer from the client' } };
        });
        client.setRequestHandler(ElicitRequestSchema, async (request) => {
          elicited.push(request.params);
          return { action: 'decline' };
        });
      },
    });
  });
  afterAll(async () => {
    await connection?.close();
    await stack?.close();
  });

  it('lists and calls tools, reads a resource and gets a prompt', async () => {
    const { tools } = await connection.client.listTools();
    expect(tools.map((tool) => tool.name)).toEqual(expect.arrayContaining(['echo', 'get-sum', 'trigger-long-running-operation', 'trigger-sampling-request', 'trigger-elicitation-request']));
    expect(textOf(await connection.client.callTool({ name: 'echo', arguments: { message: 'over stdio' } }))).toBe('Echo: over stdio');
    const { resources } = await connection.client.listResources();
    expect(resources.length).toBeGreaterThan(0);
    const read = await connection.client.readResource({ uri: resources[0]!.uri });
    expect(read.contents[0]?.uri).toBe(resources[0]!.uri);
    const prompt = await connection.client.getPrompt({ name: 'simple-prompt' });
    expect(prompt.messages.length).toBeGreaterThan(0);
  });

  it('receives the progress notifications of a long-running tool', async () => {
    const progress: number[] = [];
    await connection.client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 4 } }, undefined, { onprogress: (event) => progress.push(event.progress) });
    expect(progress).toEqual([1, 2, 3, 4]);
  });

  it('carries the server’s sampling and elicitation requests to the client and the answers back', async () => {
    const sampling = await connection.client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'hello', maxTokens: 10 } });
    expect(sampled).toHaveLength(1);
    expect(textOf(sampling)).toContain('answer from the client');
    const elicitation = await connection.client.callTool({ name: 'trigger-elicitation-request', arguments: {} });
    expect(elicited).toHaveLength(1);
    expect(JSON.stringify(elicitation.content)).toMatch(/decline/i);
  });

  it('logs the spawn, and never hands the server the client’s token', async () => {
    const started = stack.logs.find((log) => log.msg === 'stdio server started');
    expect(started).toMatchObject({ session_id: connection.transport.sessionId, pid: expect.any(Number) });
    const env = await connection.client.callTool({ name: 'get-env', arguments: {} });
    expect(textOf(env)).not.toContain(connection.accessToken());
    expect(textOf(env)).not.toMatch(/eyJ[A-Za-z0-9_-]{8,}/);
  });

  it('counts the process, its start-up and its standalone stream on the admin port', async () => {
    const metrics = async () => (await fetch(`${stack.warden.adminUrl}/metrics`)).text();
    await expect.poll(metrics, { timeout: 3000 }).toMatch(/^mcp_warden_open_streams 1$/m);
    const text = await metrics();
    expect(text).toMatch(/^mcp_warden_stdio_processes 1$/m);
    expect(text).toMatch(/^mcp_warden_stdio_spawns_total\{result="ok"\} 1$/m);
    expect(text).toMatch(/^mcp_warden_stdio_startup_seconds_count 1$/m);
  });

  it('ends the process when the client deletes the session', async () => {
    const pid = stack.logs.find((log) => log.msg === 'stdio server started' && log.session_id === connection.transport.sessionId)?.pid as number;
    expect(alive(pid)).toBe(true);
    await connection.transport.terminateSession();
    await expect.poll(() => alive(pid), { timeout: 5000 }).toBe(false);
    expect(stack.logs).toContainEqual(expect.objectContaining({ msg: 'stdio server ended', reason: 'deleted', pid }));
    expect(await (await fetch(`${stack.warden.adminUrl}/metrics`)).text()).toMatch(/^mcp_warden_stdio_exits_total\{reason="deleted"\} 1$/m);
  });
});

describe('one process per session, isolated by principal', () => {
  let stack: Stack;

  beforeAll(async () => {
    process.env.WARDEN_TEST_STDIO_API_KEY = 'stdio-upstream-key-1';
    stack = await startStdioStack({
      command: testServer(),
      env: { SERVER_MODE: 'test' },
      credential: { type: 'env', name: 'API_KEY', value: '${env:WARDEN_TEST_STDIO_API_KEY}' },
      identity_env: { MCP_SUBJECT: 'sub', MCP_CLIENT: 'client_id' },
    });
  });
  afterAll(async () => {
    await stack?.close();
  });

  const whoami = async (client: Awaited<ReturnType<typeof connectWithToken>>['client']) =>
    JSON.parse(textOf(await client.callTool({ name: 'whoami', arguments: {} }))) as { pid: number; env: Record<string, string> };

  it('gives two principals two processes, each with exactly the allowlisted environment', async () => {
    const tokenA = await validToken(stack, { sub: 'alice', client_id: 'client-a' });
    const tokenB = await validToken(stack, { sub: 'bob', client_id: 'client-b' });
    const a = await connectWithToken(stack.mcpUrl, tokenA);
    const b = await connectWithToken(stack.mcpUrl, tokenB);
    try {
      const [seenA, seenB] = await Promise.all([whoami(a.client), whoami(b.client)]);
      expect(seenA.pid).not.toBe(seenB.pid);
      const allowed = ['PATH', 'HOME', 'LANG', 'TZ'].filter((name) => process.env[name] !== undefined);
      expect(Object.keys(seenA.env).sort()).toEqual([...allowed, 'API_KEY', 'MCP_CLIENT', 'MCP_SUBJECT', 'SERVER_MODE'].sort());
      expect(seenA.env).toMatchObject({ API_KEY: 'stdio-upstream-key-1', MCP_SUBJECT: 'alice', MCP_CLIENT: 'client-a', SERVER_MODE: 'test' });
      expect(seenB.env).toMatchObject({ MCP_SUBJECT: 'bob', MCP_CLIENT: 'client-b' });
      for (const seen of [seenA, seenB]) {
        expect(JSON.stringify(seen)).not.toContain(tokenA);
        expect(JSON.stringify(seen)).not.toContain(tokenB);
      }
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('answers 404 to a principal presenting another one’s session id, and that session goes on', async () => {
    const tokenA = await validToken(stack, { sub: 'alice', client_id: 'client-a' });
    const tokenB = await validToken(stack, { sub: 'bob', client_id: 'client-b' });
    const a = await connectWithToken(stack.mcpUrl, tokenA);
    try {
      const stolen = await fetch(stack.mcpUrl, {
        method: 'POST',
        headers: { authorization: `Bearer ${tokenB}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': a.transport.sessionId!, 'mcp-protocol-version': '2025-11-25' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'whoami', arguments: {} } }),
      });
      expect(stolen.status).toBe(404);
      expect(await stolen.text()).not.toContain('pid');
      expect((await whoami(a.client)).env.MCP_SUBJECT).toBe('alice');
    } finally {
      await a.close();
    }
  });

  it('relays a 2025-03-26 batch whole and answers each of its requests', async () => {
    const token = await validToken(stack, { sub: 'batcher' });
    const init = await fetch(stack.mcpUrl, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'old', version: '1' } } }),
    });
    expect(await init.text()).toContain('"protocolVersion":"2025-03-26"');
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': init.headers.get('mcp-session-id')!, 'mcp-protocol-version': '2025-03-26' };
    expect((await fetch(stack.mcpUrl, { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) })).status).toBe(202);
    const batch = [
      { jsonrpc: '2.0', id: 'a', method: 'tools/call', params: { name: 'echo', arguments: { message: 'first' } } },
      { jsonrpc: '2.0', id: 'b', method: 'tools/call', params: { name: 'echo', arguments: { message: 'second' } } },
    ];
    const answer = await (await fetch(stack.mcpUrl, { method: 'POST', headers, body: JSON.stringify(batch) })).text();
    const results = answer.split('\n').filter((line) => line.startsWith('data: {')).map((line) => JSON.parse(line.slice(6)) as { id: string; result: unknown });
    expect(results.map((result) => result.id).sort()).toEqual(['a', 'b']);
    expect(JSON.stringify(results)).toContain('second');
  });

  it('refuses a claim that is not a printable string before any process starts', async () => {
    const token = await validToken(stack, { sub: 'eve\nLD_PRELOAD=/tmp/evil.so', client_id: 'client-e' });
    const spawned = stack.logs.filter((log) => log.msg === 'stdio server started').length;
    const refused = await initialize(stack.mcpUrl, token);
    expect(refused.status).toBe(403);
    expect(refused.headers.get('www-authenticate')).toBeNull();
    expect(await refused.json()).toEqual({ error: 'unusable_claim', error_description: 'an identity claim of this token cannot be passed to the MCP server' });
    expect(stack.logs.filter((log) => log.msg === 'stdio server started').length).toBe(spawned);
    expect(stack.logs).toContainEqual(expect.objectContaining({ msg: 'stdio server not started: unusable identity claim', problem: 'claim sub (for MCP_SUBJECT) is not a printable string' }));
    expect(stack.logs).toContainEqual(expect.objectContaining({ msg: 'request', status: 403, reason: 'unusable_claim' }));
  });
});
