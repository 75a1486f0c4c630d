import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAuthorizationServer, type StartedAuthorizationServer } from '../../demo/authorization-server.ts';
import { startMcpServer, type StartedMcpServer } from '../../demo/mcp-server.ts';
import { CLI, configDir, runCli as run } from '../helpers/cli.ts';
import { freePort, MCP_HEADERS, INITIALIZE, waitFor } from '../helpers/stack.ts';

const { dir, writeConfig } = configDir('warden-cli-');

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

  it('prints "mcp-warden <version>" for --version and -v, and exits 0', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    for (const flag of ['--version', '-v']) {
      const { code, stdout, stderr } = await run([flag]);
      expect(code).toBe(0);
      expect(stdout).toBe(`mcp-warden ${version}\n`);
      expect(stderr).toBe('');
    }
  });

  it('lists every command, option and exit code for --help, and exits 0', async () => {
    const { code, stdout } = await run(['--help']);
    expect(code).toBe(0);
    for (const fragment of ['mcp-warden [run] --config FILE', 'mcp-warden check --config FILE', 'mcp-warden validate --config FILE', '--version', '--help', 'MCP_WARDEN_CONFIG']) {
      expect(stdout).toContain(fragment);
    }
    expect(stdout).toMatch(/^ {2}0 /m);
    expect(stdout).toMatch(/^ {2}1 /m);
    expect(stdout).toMatch(/^ {2}2 /m);
  });

  it('prints the usage to stderr and exits 2 for an unknown flag, an unknown command or a flag without its value', async () => {
    for (const args of [['--bogus'], ['--config', 'x.yaml', '--port', '80'], ['frobnicate', '--config', 'x.yaml'], ['check', 'extra', '--config', 'x.yaml'], ['--config']]) {
      const { code, stdout, stderr } = await run(args);
      expect(code, args.join(' ')).toBe(2);
      expect(stderr).toContain('usage: mcp-warden');
      expect(stderr).not.toContain('failed to start');
      expect(stdout).toBe('');
    }
    expect((await run(['--bogus'])).stderr).toMatch(/^mcp-warden: unknown option '--bogus'/);
  });

  it('takes run as an explicit command', async () => {
    const path = writeConfig(
      'explicit-run.yaml',
      `resource: { url: http://127.0.0.1:1/mcp }
authorization_servers: [{ issuer: http://127.0.0.1:2 }]
upstream: { url: http://127.0.0.1:3, credential: { type: bearer, value: "\${env:WARDEN_TEST_NEVER_SET}" } }
`,
    );
    const { code, stderr } = await run(['run', '--config', path]);
    expect(code).toBe(2);
    expect(stderr).not.toContain('unknown command');
    expect(stderr).toContain('upstream.credential.value: environment variable WARDEN_TEST_NEVER_SET is empty or not set');
  });

  it('exits 2 on a YAML syntax error, naming the file, the line and the column', async () => {
    const path = writeConfig('broken.yaml', 'resource: { url: http://127.0.0.1:1/mcp\nauthorization_servers: [{ issuer: http://127.0.0.1:2 }]\n');
    const { code, stderr, stdout } = await run(['--config', path]);
    expect(code).toBe(2);
    expect(stdout).not.toContain('listening');
    expect(stderr).toContain(`${path}: 1 problem\n  line 2, column 1: invalid YAML: flow map in block collection must be sufficiently indented and end with a }\n`);
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
    const { code, stderr, stdout } = await run(['--config', path]);
    expect(code).toBe(2);
    expect(stdout).not.toContain('listening');
    // Named by the file and the YAML path of the key, as every other config problem is.
    expect(stderr).toContain(`${path}: 1 problem\n  upstream.credential.value: environment variable WARDEN_TEST_NEVER_SET is empty or not set`);
    const introspecting = writeConfig(
      'unset-introspection-secret.yaml',
      `resource: { url: http://127.0.0.1:1/mcp }
authorization_servers: [{ issuer: http://127.0.0.1:2, introspection: { client_id: rs, client_secret: "\${file:${join(dir, 'no-such-secret')}}" } }]
upstream: { url: http://127.0.0.1:3 }
`,
    );
    const second = await run(['--config', introspecting]);
    expect(second.code).toBe(2);
    expect(second.stderr).toContain(`${introspecting}: 1 problem\n  authorization_servers[0].introspection.client_secret: cannot read file`);
  });

  it('exits 2, not 1, when a secret the broker needs is not set, before anything listens', async () => {
    const path = writeConfig(
      'unset-broker-secret.yaml',
      `resource: { url: http://127.0.0.1:1/mcp }
broker:
  identity_provider: { issuer: http://127.0.0.1:2, client_id: warden, client_secret: "\${env:WARDEN_TEST_NEVER_SET}" }
  store: { type: sqlite, path: "${join(dir, 'never-created.db')}" }
upstream: { url: http://127.0.0.1:3 }
listen: { port: 0 }
admin: { port: 0 }
`,
    );
    const { code, stderr, stdout } = await run(['--config', path]);
    expect(code).toBe(2);
    expect(stdout).not.toContain('listening');
    expect(stderr).toContain(`${path}: 1 problem\n  broker.identity_provider.client_secret: environment variable WARDEN_TEST_NEVER_SET is empty or not set`);
    expect(existsSync(join(dir, 'never-created.db'))).toBe(false);
  });
});

describe('SIGTERM', () => {
  let as: StartedAuthorizationServer;
  let mcp: StartedMcpServer;
  let child: ChildProcess;
  let url: string;
  let adminUrl: string;
  let token: string;
  let configPath: string;
  const grace = 5000;
  const logLines: string[] = [];

  beforeAll(async () => {
    mcp = await startMcpServer();
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    as = await startAuthorizationServer({ resources: { [`${url}/mcp`]: { scopes: ['mcp:read'] } } });
    configPath = writeConfig(
      'drain.yaml',
      `listen: { host: 127.0.0.1, port: ${port} }
admin: { host: 127.0.0.1, port: 0 }
resource: { url: "${url}/mcp" }
authorization_servers: [{ issuer: "${as.issuer}" }]
upstream: { url: "${mcp.origin}" }
lifecycle: { shutdown_grace: ${grace / 1000}s }
`,
    );
    child = spawn(process.execPath, [CLI, '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
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

  it('reloads the config file on SIGHUP, and goes on serving', async () => {
    const reloaded = () => logLines.filter((line) => line.includes('"config reloaded"'));
    const before = reloaded().length;
    child.kill('SIGHUP');
    await waitFor(() => reloaded().length > before, 'the SIGHUP reload', 5000);
    expect(JSON.parse(reloaded().at(-1)!)).toMatchObject({ trigger: 'signal', file: configPath, changed: [] });
    const init = await fetch(`${url}/mcp`, { method: 'POST', headers: { ...MCP_HEADERS, authorization: `Bearer ${token}` }, body: INITIALIZE });
    expect(init.status).toBe(200);
    await init.body?.cancel();
  });

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
