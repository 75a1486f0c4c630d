import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { validToken } from '../security/helpers.ts';
import type { Stack } from '../helpers/stack.ts';
import { alive, connectWithToken, initialize, startStdioStack, testServer, textOf } from '../helpers/stdio-stack.ts';

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

describe('stdio server faults', () => {
  it('answers the open call of a child that crashes with a JSON-RPC error, kills the session (404), and serves other sessions', async () => {
    stack = await startStdioStack({ command: testServer() });
    const token = await validToken(stack);
    const victim = await connectWithToken(stack.mcpUrl, token);
    const bystander = await connectWithToken(stack.mcpUrl, token);
    await expect(victim.client.callTool({ name: 'crash', arguments: {} })).rejects.toThrow(/MCP server process exited/);
    expect(stack.logs).toContainEqual(expect.objectContaining({ msg: 'stdio server exited during its session', exit_code: 3, session_id: victim.transport.sessionId }));
    expect(stack.logs).toContainEqual(expect.objectContaining({ msg: 'stdio server ended', reason: 'crashed' }));
    await expect(victim.client.callTool({ name: 'echo', arguments: { message: 'still there?' } })).rejects.toThrow(/session.not.found/i);
    expect(textOf(await bystander.client.callTool({ name: 'echo', arguments: { message: 'unaffected' } }))).toBe('unaffected');
    await Promise.all([victim.close().catch(() => undefined), bystander.close()]);
  });

  it('drops garbage on stdout (not JSON, too long, not JSON-RPC), logs why, and the session goes on', async () => {
    stack = await startStdioStack({ command: testServer(), max_message_bytes: 1024 * 1024 });
    const token = await validToken(stack);
    const { client, close } = await connectWithToken(stack.mcpUrl, token);
    expect(textOf(await client.callTool({ name: 'garbage', arguments: {} }))).toBe('after garbage');
    const dropped = stack.logs.filter((log) => log.msg === 'stdio server wrote a line that was dropped');
    expect(dropped.map((log) => log.problem)).toEqual(['not a JSON-RPC message', 'longer than upstream.max_message_bytes', 'not a JSON-RPC message']);
    expect(JSON.stringify(stack.logs)).not.toContain('this is not json');
    expect(textOf(await client.callTool({ name: 'echo', arguments: { message: 'next' } }))).toBe('next');
    await close();
  });

  it('kills a child that never answers initialize after startup_timeout and answers 504', async () => {
    stack = await startStdioStack({ command: testServer('never-initialize'), startup_timeout: '500ms' });
    const started = Date.now();
    const response = await initialize(stack.mcpUrl, await validToken(stack));
    expect(response.status).toBe(504);
    expect(await response.json()).toEqual({ error: 'upstream_timeout', error_description: 'the MCP server did not answer initialize in time' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    const log = stack.logs.find((line) => line.msg === 'stdio server did not answer initialize in time; ended');
    expect(log).toBeDefined();
    await expect.poll(() => alive(log!.pid as number), { timeout: 5000 }).toBe(false);
    expect((await initialize(stack.mcpUrl, await validToken(stack))).status).toBe(504);
  });

  it('answers 502 when the command cannot be started at all', async () => {
    stack = await startStdioStack({ command: ['/nonexistent/mcp-server'] });
    const response = await initialize(stack.mcpUrl, await validToken(stack));
    expect(response.status).toBe(502);
    expect(stack.logs).toContainEqual(expect.objectContaining({ msg: 'stdio server exited during its session', spawn_error: 'ENOENT' }));
  });

  it('answers 503 and starts nothing when a secret of the child environment can no longer be read', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stdio-secret-'));
    const file = join(dir, 'token');
    writeFileSync(file, 'rotating-secret-1\n');
    stack = await startStdioStack({ command: testServer(), env: { TOKEN: `\${file:${file}}` }, max_processes_per_principal: 100 });
    const token = await validToken(stack);
    expect((await initialize(stack.mcpUrl, token)).status).toBe(200);
    rmSync(file);
    // The file is re-read every 2 s.
    await expect.poll(async () => (await initialize(stack!.mcpUrl, token)).status, { timeout: 5000, interval: 250 }).toBe(503);
    expect(stack.logs).toContainEqual(expect.objectContaining({ msg: 'stdio server not started: a secret of its environment cannot be read' }));
  });

  it('logs stderr line by line, tagged with the session, at most 20 lines a second', async () => {
    stack = await startStdioStack({ command: testServer() });
    const { client, transport, close } = await connectWithToken(stack.mcpUrl, await validToken(stack));
    await client.callTool({ name: 'stderr', arguments: { lines: 3 } });
    await expect.poll(() => stack!.logs.filter((log) => log.msg === 'stdio server stderr' && /^stderr line \d$/.test(String(log.line))).length).toBe(3);
    expect(stack.logs.find((log) => log.line === 'stderr line 1')).toMatchObject({ session_id: transport.sessionId, pid: expect.any(Number) });
    await client.callTool({ name: 'stderr', arguments: { lines: 200 } });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(stack.logs.filter((log) => log.msg === 'stdio server stderr').length).toBeLessThanOrEqual(3 + 40);
    await close();
  });
});
