import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAuthorizationServer, type StartedAuthorizationServer } from '../../demo/authorization-server.ts';
import { startMcpServer, type StartedMcpServer } from '../../demo/mcp-server.ts';
import { freePort, MCP_HEADERS, INITIALIZE } from '../helpers/stack.ts';

const CLI = new URL('../../src/cli.ts', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'warden-cli-'));

function writeConfig(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

async function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stderr, stdout };
}

describe('mcp-warden command line', () => {
  it('prints every config problem with its YAML path and exits 2 before listening', async () => {
    const path = writeConfig(
      'bad.yaml',
      `listen: { port: 70000, hots: x }
resource: { url: "ftp://mcp.example.com/mcp" }
authorization_servers: []
upstream: { url: http://127.0.0.1:3000, credential: { type: header, name: X-Key, value: plain-secret } }
lifecycle: { shutdown_grace: soon }
`,
    );
    const { code, stderr, stdout } = await run(['--config', path]);
    expect(code).toBe(2);
    expect(stdout).not.toContain('listening');
    for (const fragment of [
      'listen.port: expected a port number from 0 to 65535',
      'listen.hots: unknown key',
      'resource.url: expected an http(s) URL',
      'authorization_servers: at least one authorization server is required',
      'upstream.credential.value: secrets are never written in the config',
      'lifecycle.shutdown_grace: expected a duration',
    ]) {
      expect(stderr).toContain(fragment);
    }
    expect(stderr).not.toContain('plain-secret');
  });

  it('exits 2 when no config is given, and takes MCP_WARDEN_CONFIG', async () => {
    expect((await run([])).code).toBe(2);
    const { code, stderr } = await run([], { MCP_WARDEN_CONFIG: join(dir, 'missing.yaml') });
    expect(code).toBe(2);
    expect(stderr).toContain('cannot read the config file (ENOENT)');
  });

  it('exits 2 when a secret the config names is not set', async () => {
    const path = writeConfig(
      'unset-secret.yaml',
      `resource: { url: http://127.0.0.1:1/mcp }
authorization_servers: [{ issuer: http://127.0.0.1:2 }]
upstream: { url: http://127.0.0.1:3, credential: { type: bearer, value: "\${env:WARDEN_TEST_NEVER_SET}" } }
listen: { port: 0 }
admin: { port: 0 }
`,
    );
    const { code, stderr } = await run(['--config', path]);
    expect(code).toBe(2);
    expect(stderr).toContain('upstream.credential.value: environment variable WARDEN_TEST_NEVER_SET is empty or not set');
    const introspecting = writeConfig(
      'unset-introspection-secret.yaml',
      `resource: { url: http://127.0.0.1:1/mcp }
authorization_servers: [{ issuer: http://127.0.0.1:2, introspection: { client_id: rs, client_secret: "\${file:${join(dir, 'no-such-secret')}}" } }]
upstream: { url: http://127.0.0.1:3 }
`,
    );
    const second = await run(['--config', introspecting]);
    expect(second.code).toBe(2);
    expect(second.stderr).toContain('authorization_servers[0].introspection.client_secret: cannot read file');
  });
});

describe('SIGTERM', () => {
  let as: StartedAuthorizationServer;
  let mcp: StartedMcpServer;
  let child: ChildProcess;
  let url: string;
  let adminUrl: string;
  let token: string;
  const grace = 5000;
  const logLines: string[] = [];

  beforeAll(async () => {
    mcp = await startMcpServer();
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    as = await startAuthorizationServer({ resources: { [`${url}/mcp`]: { scopes: ['mcp:read'] } } });
    const path = writeConfig(
      'drain.yaml',
      `listen: { host: 127.0.0.1, port: ${port} }
admin: { host: 127.0.0.1, port: 0 }
resource: { url: "${url}/mcp" }
authorization_servers: [{ issuer: "${as.issuer}" }]
upstream: { url: "${mcp.origin}" }
lifecycle: { shutdown_grace: ${grace / 1000}s }
`,
    );
    child = spawn(process.execPath, [CLI, '--config', path], { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines = createInterface({ input: child.stdout! });
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`exited early with ${code}`)));
      lines.on('line', (line) => {
        logLines.push(line);
        const entry = JSON.parse(line) as { msg: string; admin_url?: string };
        if (entry.msg === 'listening') adminUrl = entry.admin_url!;
        if (entry.msg === 'verifiers ready') resolve();
      });
    });
    token = await as.mintToken({ resource: `${url}/mcp`, scope: 'mcp:read' });
  });
  afterAll(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await Promise.all([as?.close(), mcp?.close()]);
  });

  /** The first JSON-RPC message in a response that may be JSON or an event stream. */
  async function message(response: Response): Promise<{ result?: { content?: Array<{ text: string }> } }> {
    const text = await response.text();
    const data = text.split('\n').find((line) => line.startsWith('data: ') && line.length > 6);
    return JSON.parse(data ? data.slice(6) : text);
  }

  it('lets the in-flight POST finish, closes the open stream, and exits 0 within the grace period', async () => {
    const auth = { authorization: `Bearer ${token}` };
    const init = await fetch(`${url}/mcp`, { method: 'POST', headers: { ...MCP_HEADERS, ...auth }, body: INITIALIZE });
    expect(init.status).toBe(200);
    const session = { 'mcp-session-id': init.headers.get('mcp-session-id')!, 'mcp-protocol-version': '2025-11-25' };
    await message(init);
    const initialized = await fetch(`${url}/mcp`, {
      method: 'POST',
      headers: { ...MCP_HEADERS, ...auth, ...session },
      body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    });
    expect(initialized.status).toBe(202);

    const stream = await fetch(`${url}/mcp`, { headers: { accept: 'text/event-stream', ...auth, ...session } });
    expect(stream.status).toBe(200);
    const streamDone = stream.text().then(
      () => 'ended',
      () => 'broken',
    );
    const slowCall = fetch(`${url}/mcp`, {
      method: 'POST',
      headers: { ...MCP_HEADERS, ...auth, ...session },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'slow', arguments: { ms: 1000 } } }),
    });
    await new Promise((resolve) => setTimeout(resolve, 200));

    const signalledAt = performance.now();
    const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
    child.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const readiness = await fetch(`${adminUrl}/readyz`);
    expect(readiness.status).toBe(503);
    expect(await readiness.json()).toEqual({ status: 'draining' });

    const result = await message(await slowCall);
    expect(result.result?.content?.[0]?.text).toBe('slept 1000');
    expect(await streamDone).toBe('ended');
    const [code] = await exited;
    expect(code).toBe(0);
    expect(performance.now() - signalledAt).toBeLessThan(grace);
    await expect(fetch(`${url}/mcp`)).rejects.toThrow();
    // The process's own log lines, start to exit: request lines, drain, stop, and never the token.
    expect(logLines.some((line) => line.includes('"msg":"request"'))).toBe(true);
    expect(logLines.join('\n')).not.toContain(token);
    expect(logLines.join('\n')).not.toMatch(/bearer [A-Za-z0-9]/i);
  });
});
