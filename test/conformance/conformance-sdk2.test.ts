// The official conformance suite's 2026-07-28 server scenarios (conformance 0.2.0-alpha.12,
// --requirements 2026-07-28) against a real SDK 2.x server (@modelcontextprotocol/server, which speaks
// that revision itself), run twice: directly, and through a token injector and mcp-warden. Where
// conformance.test.ts runs them against an emulation of the 2026-07-28 wire in front of SDK 1.x, this
// is the SDK's own implementation of it. The proxy is transparent when every check ends the same way
// both times. `npm run test:conformance`.
//
// Investigating a difference: CONFORMANCE_LOG=/tmp/warden.log writes the proxy's access lines,
// CONFORMANCE_BYPASS=1 points the injector straight at the server to tell the proxy from the test chain.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createProxyServer } from 'http-proxy-3';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAuthorizationServer, type StartedAuthorizationServer } from '../../demo/authorization-server.ts';
import { validateConfig } from '../../src/config/load.ts';
import { startWarden } from '../../src/server.ts';
import { startSdk2Server, type Sdk2Server } from '../fixtures/sdk2-server.ts';
import { freePort, waitFor } from '../helpers/stack.ts';

const root = new URL('../../', import.meta.url).pathname;
const SUITE = { bin: 'node_modules/conformance-0.2/dist/index.js', args: ['--requirements', '2026-07-28'] } as const;
/**
 * Scenarios the SDK 2.x server (2.4.0) fails directly: the tasks extension (io.modelcontextprotocol/tasks,
 * not scored for 2026-07-28), which the fixture does not implement. Everything else passes directly, so a
 * new failure elsewhere is a change in the SDK or the suite to look at.
 */
const FAILING_DIRECTLY = /^tasks-/;
const VERDICTS = new Set(['SUCCESS', 'FAILURE', 'WARNING', 'SKIPPED']);
/** Why a check failed, by run URL and check, to explain a difference. */
const errors = new Map<string, string>();

/** Runs the suite against `url`; returns each check's verdict, keyed by scenario, check id and order. */
async function runSuite(url: string): Promise<Map<string, string>> {
  const out = mkdtempSync(join(tmpdir(), 'conformance-sdk2-'));
  const child = spawn(process.execPath, [join(root, SUITE.bin), 'server', '--url', url, '-o', out, ...SUITE.args], { cwd: out, stdio: 'ignore' });
  await once(child, 'exit');
  const verdicts = new Map<string, string>();
  for (const dir of readdirSync(out).sort()) {
    const scenario = /^server-(.+?)-\d{4}-\d{2}-\d{2}T/.exec(dir)?.[1] ?? dir;
    let checks: Array<{ id: string; status: string; errorMessage?: string }>;
    try {
      checks = JSON.parse(readFileSync(join(out, dir, 'checks.json'), 'utf8'));
    } catch {
      continue;
    }
    const seen = new Map<string, number>();
    for (const check of checks) {
      if (!VERDICTS.has(check.status)) continue;
      const n = (seen.get(check.id) ?? 0) + 1;
      seen.set(check.id, n);
      const key = `${scenario}/${check.id}${n > 1 ? `#${n}` : ''}`;
      verdicts.set(key, check.status);
      if (check.errorMessage) errors.set(`${url} ${key}`, check.errorMessage);
    }
  }
  return verdicts;
}

function totals(verdicts: Map<string, string>): string {
  const count = (status: string) => [...verdicts.values()].filter((value) => value === status).length;
  return `${verdicts.size} checks: ${count('SUCCESS')} passed, ${count('FAILURE')} failed, ${count('WARNING')} warnings`;
}

/** Adds a valid bearer token to every request, since the suite's client cannot send one. Host and Origin pass unchanged. */
async function startInjector(target: string, token: string) {
  const proxy = createProxyServer({ target, changeOrigin: false, xfwd: false, ws: false });
  proxy.on('error', (_error, _req, res) => {
    if ('writeHead' in res && !res.headersSent) res.writeHead(502).end();
  });
  const server = createServer((req, res) => proxy.web(req, res, { headers: { authorization: `Bearer ${token}` } }));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    async close() {
      server.closeAllConnections();
      server.close();
      proxy.close();
    },
  };
}

/** mcp-warden in front of `upstream`, behind an injector that adds a valid token; returns the injector's MCP URL. */
async function startProxied(as: StartedAuthorizationServer, wardenPort: number, upstream: string) {
  const resource = `http://127.0.0.1:${wardenPort}/mcp`;
  const token = await as.mintToken({ resource, scope: 'mcp:read' });
  const injector = await startInjector(process.env.CONFORMANCE_BYPASS ? upstream : `http://127.0.0.1:${wardenPort}`, token);
  const local = (host: string) => `${host}:${injector.port}`;
  const warden = await startWarden(
    validateConfig({
      listen: { host: '127.0.0.1', port: wardenPort, allowed_hosts: [local('localhost'), local('127.0.0.1')] },
      admin: { host: '127.0.0.1', port: 0 },
      resource: { url: resource },
      authorization_servers: [{ issuer: as.issuer }],
      upstream: { url: upstream },
      cors: { allowed_origins: [`http://${local('localhost')}`, `http://${local('127.0.0.1')}`] },
    }),
    { logger: pino({ level: process.env.CONFORMANCE_LOG ? 'info' : 'silent' }, process.env.CONFORMANCE_LOG ? pino.destination(process.env.CONFORMANCE_LOG) : undefined) },
  );
  await waitFor(() => warden.readiness.ready, 'warden ready');
  return {
    url: `http://127.0.0.1:${injector.port}/mcp`,
    async close() {
      await warden.shutdown();
      await injector.close();
    },
  };
}

/** Every check whose verdict differs between the two runs, with the reason a failing run gave. */
function differencesOf(direct: Map<string, string>, directUrl: string, proxied: Map<string, string>, proxiedUrl: string): string[] {
  return [...new Set([...direct.keys(), ...proxied.keys()])]
    .filter((key) => direct.get(key) !== proxied.get(key))
    .map((key) => `${key}: direct ${direct.get(key)}, proxied ${proxied.get(key)} (${errors.get(`${proxiedUrl} ${key}`) ?? errors.get(`${directUrl} ${key}`) ?? 'no message'})`);
}

describe('conformance 0.2.0-alpha.12 --requirements 2026-07-28 against the SDK 2.x server', () => {
  let fixture: Sdk2Server;
  let as: StartedAuthorizationServer;
  let proxied: Awaited<ReturnType<typeof startProxied>>;
  let direct: Map<string, string>;

  beforeAll(async () => {
    fixture = await startSdk2Server({ surface: 'conformance' });
    const port = await freePort();
    as = await startAuthorizationServer({ resources: { [`http://127.0.0.1:${port}/mcp`]: { scopes: ['mcp:read'] } } });
    proxied = await startProxied(as, port, fixture.origin);
    direct = await runSuite(fixture.url);
  }, 60_000);
  afterAll(async () => {
    await proxied?.close();
    await Promise.all([as?.close(), fixture?.close()]);
  });

  it('ends every check through injector → mcp-warden → the SDK 2.x server as it ends directly against it', { timeout: 60_000 }, async () => {
    const throughWarden = await runSuite(proxied.url);
    console.log(`conformance 0.2.0-alpha.12 --requirements 2026-07-28, SDK 2.x server\n  direct:               ${totals(direct)}\n  through mcp-warden:   ${totals(throughWarden)}`);
    expect(direct.size).toBeGreaterThan(0);
    expect(differencesOf(direct, fixture.url, throughWarden, proxied.url)).toEqual([]);
  });

  it('passes every scored check directly, so the comparison covers the whole 2026-07-28 surface', () => {
    const failing = [...direct].filter(([key, status]) => status === 'FAILURE' && !FAILING_DIRECTLY.test(key)).map(([key]) => `${key} (${errors.get(`${fixture.url} ${key}`) ?? 'no message'})`);
    expect(failing).toEqual([]);
  });
});
