// Config reload against real parts: a changed file (or SIGHUP) applies to the next request while a
// stream already open keeps flowing on the config it started with; an invalid file, or a change a
// running process cannot take (a port), changes nothing and is reported by log, counter and gauge.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startAuthorizationServer, type StartedAuthorizationServer } from '../../demo/authorization-server.ts';
import { startMcpServer, type StartedMcpServer } from '../../demo/mcp-server.ts';
import { parseConfigText } from '../../src/config/load.ts';
import { startWarden, type Warden } from '../../src/server.ts';
import { freePort, INITIALIZE, MCP_HEADERS, SCOPES, waitFor } from '../helpers/stack.ts';

const POLL_MS = 100;

describe('config reload', () => {
  let dir: string;
  let file: string;
  let as: StartedAuthorizationServer;
  let mcp: StartedMcpServer;
  let warden: Warden;
  let mcpUrl: string;
  let port: number;
  const logs: Array<Record<string, unknown>> = [];

  const raw = (requiredScopes: string[], overrides: Record<string, unknown> = {}) => ({
    listen: { host: '127.0.0.1', port },
    admin: { host: '127.0.0.1', port: 0 },
    resource: { url: mcpUrl, scopes_supported: SCOPES },
    authorization_servers: [{ issuer: as.issuer }],
    tokens: { clock_tolerance: '0s', required_scopes: requiredScopes },
    upstream: { url: mcp.origin },
    lifecycle: { shutdown_grace: '2s' },
    ...overrides,
  });
  const write = (text: string) => writeFileSync(file, text);
  const metric = async (name: string): Promise<string> => {
    const text = await (await fetch(`${warden.adminUrl}/metrics`)).text();
    return text
      .split('\n')
      .filter((line) => line.startsWith(name))
      .join('\n');
  };
  const initialize = (token: string) => fetch(mcpUrl, { method: 'POST', headers: { ...MCP_HEADERS, authorization: `Bearer ${token}` }, body: INITIALIZE });
  const reloadsLogged = (msg: string) => logs.filter((line) => line.msg === msg);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warden-reload-'));
    file = join(dir, 'config.yaml');
    mcp = await startMcpServer();
    port = await freePort();
    mcpUrl = `http://127.0.0.1:${port}/mcp`;
    as = await startAuthorizationServer({ resources: { [mcpUrl]: { scopes: SCOPES, format: 'jwt' } } });
    write(stringify(raw(['mcp:read'])));
    const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
    warden = await startWarden(parseConfigText(stringify(raw(['mcp:read']))), { logger, configFile: file, configPollMs: POLL_MS });
    await waitFor(() => warden.readiness.ready, 'warden ready');
  });

  afterAll(async () => {
    await warden?.shutdown();
    await Promise.all([as?.close(), mcp?.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('applies a changed required_scopes to the next request while a stream opened before keeps flowing', async () => {
    const reader = await as.mintToken({ resource: mcpUrl, scope: 'mcp:read' });
    expect((await initialize(reader)).status).toBe(200);
    const client = new Client({ name: 'reload-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl), { requestInit: { headers: { authorization: `Bearer ${reader}` } } }));
    try {
      const progress: number[] = [];
      const call = client.callTool({ name: 'countdown', arguments: { steps: 8, interval_ms: 150 } }, undefined, {
        onprogress: (event) => progress.push(event.progress),
        timeout: 10_000,
      });
      await waitFor(() => progress.length >= 2, 'the stream under way', 5000);
      const reloadsBefore = reloadsLogged('config reloaded').length;
      write(stringify(raw(['mcp:read', 'mcp:write'])));
      await waitFor(() => reloadsLogged('config reloaded').length > reloadsBefore, 'the file reloaded', 5000);
      expect(reloadsLogged('config reloaded').at(-1)).toMatchObject({ trigger: 'file', changed: ['tokens'] });
      // The next request meets the new config: mcp:read alone is no longer enough.
      const refused = await initialize(reader);
      expect(refused.status).toBe(403);
      expect(refused.headers.get('www-authenticate')).toContain('scope="mcp:read mcp:write"');
      const writer = await as.mintToken({ resource: mcpUrl, scope: 'mcp:read mcp:write' });
      expect((await initialize(writer)).status).toBe(200);
      // The stream taken before the reload finishes on the config it started with.
      const progressAtReload = progress.length;
      expect(progressAtReload).toBeLessThan(8);
      expect(await call).toMatchObject({ content: [{ type: 'text', text: 'done' }] });
      expect(progress).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      expect(await metric('mcp_warden_config_reload_failed')).toContain('mcp_warden_config_reload_failed 0');
      expect(await metric('mcp_warden_config_reloads_total')).toContain('mcp_warden_config_reloads_total{result="ok"} 1');
    } finally {
      await client.close();
    }
  });

  it('keeps an upstream the reload left as it was open for the calls after it, once the last call of the retired config ends', async () => {
    const writer = await as.mintToken({ resource: mcpUrl, scope: 'mcp:read mcp:write' });
    const connect = async (name: string) => {
      const client = new Client({ name, version: '1.0.0' });
      await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl), { requestInit: { headers: { authorization: `Bearer ${writer}` } } }));
      return client;
    };
    const before = await connect('before-reload');
    let after: Client | undefined;
    try {
      const earlier: number[] = [];
      const first = before.callTool({ name: 'countdown', arguments: { steps: 3, interval_ms: 150 } }, undefined, { onprogress: (event) => earlier.push(event.progress), timeout: 10_000 });
      await waitFor(() => earlier.length >= 1, 'the call before the reload under way', 5000);
      const longerGrace = raw(['mcp:read', 'mcp:write'], { lifecycle: { shutdown_grace: '3s' } });
      expect(await warden.reload(parseConfigText(stringify(longerGrace)))).toEqual({ ok: true, changed: ['lifecycle'] });
      after = await connect('after-reload');
      const later: number[] = [];
      const second = after.callTool({ name: 'countdown', arguments: { steps: 8, interval_ms: 150 } }, undefined, { onprogress: (event) => later.push(event.progress), timeout: 10_000 });
      await waitFor(() => later.length >= 1, 'the call after the reload under way', 5000);
      // The retired config's last request ends while the call after the reload still streams through the same upstream.
      expect(await first).toMatchObject({ content: [{ type: 'text', text: 'done' }] });
      await before.close();
      expect(await second).toMatchObject({ content: [{ type: 'text', text: 'done' }] });
      expect(later).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    } finally {
      await before.close().catch(() => undefined);
      await after?.close().catch(() => undefined);
    }
    expect(await warden.reload(parseConfigText(stringify(raw(['mcp:read', 'mcp:write']))))).toEqual({ ok: true, changed: ['lifecycle'] });
  });

  it('sends new requests to a new upstream while a call under way finishes at the old one', async () => {
    const second = await startMcpServer();
    try {
      const writer = await as.mintToken({ resource: mcpUrl, scope: 'mcp:read mcp:write' });
      const client = new Client({ name: 'reload-upstream', version: '1.0.0' });
      await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl), { requestInit: { headers: { authorization: `Bearer ${writer}` } } }));
      try {
        const progress: number[] = [];
        const call = client.callTool({ name: 'countdown', arguments: { steps: 6, interval_ms: 150 } }, undefined, { onprogress: (event) => progress.push(event.progress), timeout: 10_000 });
        await waitFor(() => progress.length >= 1, 'the call under way', 5000);
        expect(await warden.reload(parseConfigText(stringify(raw(['mcp:read', 'mcp:write'], { upstream: { url: second.origin } }))))).toEqual({ ok: true, changed: ['upstream'] });
        const secondBefore = second.requests.length;
        expect((await initialize(writer)).status).toBe(200);
        expect(second.requests.length).toBe(secondBefore + 1);
        expect(await call).toMatchObject({ content: [{ type: 'text', text: 'done' }] });
        expect(progress).toEqual([1, 2, 3, 4, 5, 6]);
      } finally {
        await client.close().catch(() => undefined);
      }
      expect(await warden.reload(parseConfigText(stringify(raw(['mcp:read', 'mcp:write']))))).toEqual({ ok: true, changed: ['upstream'] });
    } finally {
      await second.close();
    }
  });

  it('keeps the running config when the file is invalid, reports every problem, and stays ready', async () => {
    const writer = await as.mintToken({ resource: mcpUrl, scope: 'mcp:read mcp:write' });
    const before = reloadsLogged('config reload failed: the file is not a valid config; the running config stays').length;
    write(stringify({ ...raw(['mcp:read']), tokens: { required_scopes: 'mcp:read' }, policy: { rules: [{ match: {} }] } }));
    await waitFor(() => reloadsLogged('config reload failed: the file is not a valid config; the running config stays').length > before, 'the invalid file reported', 5000);
    const line = reloadsLogged('config reload failed: the file is not a valid config; the running config stays').at(-1)!;
    expect((line.problems as Array<{ path: string }>).map((problem) => problem.path)).toEqual(expect.arrayContaining(['tokens.required_scopes', 'policy.rules[0].match.method', 'policy.rules[0].scopes']));
    expect(await metric('mcp_warden_config_reload_failed')).toContain('mcp_warden_config_reload_failed 1');
    expect(await metric('mcp_warden_config_reloads_total')).toContain('mcp_warden_config_reloads_total{result="invalid"} 1');
    // Still the last good config (mcp:write required), and still ready.
    const reader = await as.mintToken({ resource: mcpUrl, scope: 'mcp:read' });
    expect((await initialize(reader)).status).toBe(403);
    expect((await initialize(writer)).status).toBe(200);
    expect((await fetch(`${warden.adminUrl}/readyz`)).status).toBe(200);
  });

  it('refuses a config whose secret cannot be read, or whose new issuer cannot be verified, and keeps serving', async () => {
    const writer = await as.mintToken({ resource: mcpUrl, scope: 'mcp:read mcp:write' });
    const unreadable = await warden.reload(parseConfigText(stringify(raw(['mcp:read', 'mcp:write'], { upstream: { url: mcp.origin, credential: { type: 'bearer', value: '${env:WARDEN_TEST_RELOAD_UNSET}' } } }))));
    expect(unreadable).toEqual({ ok: false, problems: [{ path: 'upstream.credential.value', message: expect.stringContaining('WARDEN_TEST_RELOAD_UNSET') }] });
    const unreachable = await warden.reload(parseConfigText(stringify(raw(['mcp:read', 'mcp:write'], { authorization_servers: [{ issuer: 'http://127.0.0.1:1' }], tokens: { clock_tolerance: '0s', required_scopes: ['mcp:read', 'mcp:write'], jwks: { timeout: '500ms' } } }))));
    expect(unreachable).toEqual({ ok: false, problems: [{ path: 'authorization_servers', message: expect.stringContaining('http://127.0.0.1:1: cannot verify tokens yet') }] });
    expect((await initialize(writer)).status).toBe(200);
    expect(warden.config.upstream.credential).toEqual({ type: 'none' });
  });

  it('refuses a port change by name, keeps serving on the old port, and a valid file afterwards applies', async () => {
    const otherPort = await freePort();
    const before = reloadsLogged('config reload refused; the running config stays').length;
    write(stringify(raw(['mcp:read'], { listen: { host: '127.0.0.1', port: otherPort } })));
    await waitFor(() => reloadsLogged('config reload refused; the running config stays').length > before, 'the port change refused', 5000);
    expect(reloadsLogged('config reload refused; the running config stays').at(-1)!.problems).toEqual([{ path: 'listen', message: expect.stringContaining('cannot change without a restart') }]);
    expect(await metric('mcp_warden_config_reloads_total')).toContain('mcp_warden_config_reloads_total{result="refused"} 1');
    expect(await metric('mcp_warden_config_reload_failed')).toContain('mcp_warden_config_reload_failed 1');
    const reader = await as.mintToken({ resource: mcpUrl, scope: 'mcp:read' });
    // The refused file's mcp:read-only requirement was not applied either.
    expect((await initialize(reader)).status).toBe(403);
    await expect(fetch(`http://127.0.0.1:${otherPort}/mcp`, { method: 'POST', headers: MCP_HEADERS, body: INITIALIZE })).rejects.toThrow();
    // SIGHUP's path: the same file read again on demand, now valid.
    write(stringify(raw(['mcp:read'])));
    expect(await warden.reloadFile!()).toBe('ok');
    expect((await initialize(reader)).status).toBe(200);
    expect(await metric('mcp_warden_config_reload_failed')).toContain('mcp_warden_config_reload_failed 0');
  });
});
