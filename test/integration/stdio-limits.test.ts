import { afterEach, describe, expect, it } from 'vitest';
import { validToken } from '../security/helpers.ts';
import type { Stack } from '../helpers/stack.ts';
import { alive, connectWithToken, initialize, startStdioStack, testServer, textOf } from '../helpers/stdio-stack.ts';

/**
 * A server that answers every line with an initialize result for id 1: a process costs a shell, not a
 * Node.js runtime, so that 64 of them fit in a test. Only the process bounds are tested with it.
 */
const SHELL_SERVER = [
  'sh',
  '-c',
  `while IFS= read -r line; do printf '%s\\n' '{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"sh","version":"1"}}}'; done`,
];

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

const pidsOf = (logs: Stack['logs']) => logs.filter((log) => log.msg === 'stdio server started').map((log) => log.pid as number);

describe('stdio process bounds', () => {
  it('answers the 65th concurrent session 503 with Retry-After (max_processes 64)', { timeout: 60_000 }, async () => {
    stack = await startStdioStack({ command: SHELL_SERVER, max_processes_per_principal: 1000 });
    const token = await validToken(stack);
    const opened = await Promise.all(Array.from({ length: 64 }, () => initialize(stack!.mcpUrl, token)));
    expect(opened.map((response) => response.status)).toEqual(Array(64).fill(200));
    await Promise.all(opened.map((response) => response.text()));
    const refused = await initialize(stack.mcpUrl, token);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(pidsOf(stack.logs)).toHaveLength(64);
    expect(stack.logs).toContainEqual(expect.objectContaining({ msg: 'request', status: 503, reason: 'overloaded' }));
    const metrics = await (await fetch(`${stack.warden.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/^mcp_warden_stdio_processes 64$/m);
  });

  it('answers a principal’s 5th session 429 with Retry-After while another principal still gets one', async () => {
    stack = await startStdioStack({ command: SHELL_SERVER });
    const token = await validToken(stack, { sub: 'greedy' });
    const opened = await Promise.all(Array.from({ length: 4 }, () => initialize(stack!.mcpUrl, token)));
    expect(opened.map((response) => response.status)).toEqual([200, 200, 200, 200]);
    const refused = await initialize(stack.mcpUrl, token);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(refused.headers.get('www-authenticate')).toBeNull();
    expect((await initialize(stack.mcpUrl, await validToken(stack, { sub: 'modest' }))).status).toBe(200);
  });

  it('ends an idle session’s process after idle_timeout; its id is then unknown', async () => {
    stack = await startStdioStack({ command: testServer(), idle_timeout: '400ms' });
    const token = await validToken(stack);
    const { client, transport, close } = await connectWithToken(stack.mcpUrl, token);
    const { pid } = JSON.parse(textOf(await client.callTool({ name: 'whoami', arguments: {} }))) as { pid: number };
    const sessionId = transport.sessionId!;
    await expect.poll(() => alive(pid), { timeout: 5000, interval: 50 }).toBe(false);
    expect(stack.logs).toContainEqual(expect.objectContaining({ msg: 'stdio server ended', reason: 'idle', session_id: sessionId }));
    const after = await fetch(stack.mcpUrl, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-11-25' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'ping' }),
    });
    expect(after.status).toBe(404);
    await close().catch(() => undefined);
  });

  it('ends at once the process of a client that left before its initialize was answered', async () => {
    const slow = ['sh', '-c', `sleep 0.5; ${SHELL_SERVER[2]}`];
    stack = await startStdioStack({ command: slow });
    const token = await validToken(stack);
    const leaving = new AbortController();
    const request = initialize(stack.mcpUrl, token, leaving.signal).catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 150));
    leaving.abort();
    await request;
    await expect.poll(() => stack!.logs.find((log) => log.msg === 'stdio server ended'), { timeout: 5000 }).toMatchObject({ reason: 'abandoned' });
    const pid = stack.logs.find((log) => log.msg === 'stdio server ended')!.pid as number;
    await expect.poll(() => alive(pid), { timeout: 5000 }).toBe(false);
  });

  it('does not count a tool call that runs longer than idle_timeout as idleness', async () => {
    stack = await startStdioStack({ command: testServer(), idle_timeout: '300ms' });
    const { client, close } = await connectWithToken(stack.mcpUrl, await validToken(stack));
    expect(textOf(await client.callTool({ name: 'slow', arguments: { steps: 4, delayMs: 250 } }))).toBe('done');
    expect(stack.logs.filter((log) => log.msg === 'stdio server ended')).toEqual([]);
    await close();
  });

  it('ends a process whose session binding leaves the full session table (its principal can no longer reach it)', async () => {
    stack = await startStdioStack({ command: SHELL_SERVER }, { sessions: { max_entries: 1 } });
    const token = await validToken(stack);
    const first = await initialize(stack.mcpUrl, token);
    const firstId = first.headers.get('mcp-session-id');
    await first.text();
    await (await initialize(stack.mcpUrl, token)).text();
    await expect.poll(() => stack!.logs.find((log) => log.msg === 'stdio server ended'), { timeout: 5000 }).toMatchObject({ reason: 'unbound', session_id: firstId });
  });

  it('leaves no child behind on shutdown, SIGKILLing one that ignores SIGTERM after kill_grace', async () => {
    stack = await startStdioStack({ command: testServer('ignore-sigterm'), kill_grace: '300ms' });
    const token = await validToken(stack);
    const first = await initialize(stack.mcpUrl, token);
    const second = await initialize(stack.mcpUrl, token);
    expect([first.status, second.status]).toEqual([200, 200]);
    await Promise.all([first.text(), second.text()]);
    const pids = pidsOf(stack.logs);
    expect(pids).toHaveLength(2);
    expect(pids.every(alive)).toBe(true);
    const closing = stack;
    stack = undefined;
    await closing.close();
    expect(pids.filter(alive)).toEqual([]);
    expect(closing.logs.filter((log) => log.msg === 'stdio server ended').map((log) => log.reason)).toEqual(['shutdown', 'shutdown']);
  });
});
