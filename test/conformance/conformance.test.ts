// The official MCP conformance suite's server scenarios, run twice per suite version and requirement
// set: directly against our fixture server, and through a token injector and mcp-warden. The proxy is
// transparent when every check ends the same way both times. `npm run test:conformance`.
//
// Investigating a difference: CONFORMANCE_SCENARIO narrows a run to one scenario (0.1.16 only: the
// 0.2.0 filter does not combine with --requirements), CONFORMANCE_LOG=/tmp/warden.log writes the
// proxy's access lines, CONFORMANCE_BYPASS=1 points the injector straight at the fixture to tell the
// proxy from the test chain.
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
import { startWarden, type Warden } from '../../src/server.ts';
import { startConformanceServer, type ConformanceServer } from '../fixtures/conformance-server.ts';
import { freePort, waitFor } from '../helpers/stack.ts';

const root = new URL('../../', import.meta.url).pathname;
/**
 * `failingDirectly` lists the scenarios the fixture may fail without the proxy. The 2026-07-28
 * requirements run against the real SDK 2.x server in conformance-sdk2.test.ts.
 */
const SUITES = [
  { name: 'conformance 0.1.16', bin: 'node_modules/conformance-0.1/dist/index.js', args: [], failingDirectly: [] },
  {
    name: 'conformance 0.2.0-alpha.12 --requirements 2025-11-25',
    bin: 'node_modules/conformance-0.2/dist/index.js',
    args: ['--requirements', '2025-11-25'],
    failingDirectly: [],
  },
] as const;
/**
 * Checks a stdio server cannot take part in, so over stdio they are not run at all (never failed):
 * in server-sse-polling the server's tool closes its own SSE stream mid-call (closeSSEStream) to make
 * the client resume; a stdio server has no stream to close, and the call simply completes. Resuming
 * a broken stream itself (priming event, retry, Last-Event-ID) is checked and passes over stdio.
 */
const STDIO_CANNOT = ['server-sse-polling/server-sse-disconnect-resume'];
const VERDICTS = new Set(['SUCCESS', 'FAILURE', 'WARNING', 'SKIPPED']);
/** Why a check failed, by run URL and check, to explain a difference. */
const errors = new Map<string, string>();

/** Runs one suite against `url`; returns each check's verdict, keyed by scenario, check id and order. */
async function runSuite(bin: string, args: readonly string[], url: string): Promise<Map<string, string>> {
  const out = mkdtempSync(join(tmpdir(), 'conformance-'));
  // CONFORMANCE_SCENARIO narrows a run to one scenario while investigating a difference.
  const only = process.env.CONFORMANCE_SCENARIO ? ['--scenario', process.env.CONFORMANCE_SCENARIO] : [];
  const child = spawn(process.execPath, [join(root, bin), 'server', '--url', url, '-o', out, ...args, ...only], { cwd: out, stdio: 'ignore' });
  await once(child, 'exit');
  const verdicts = new Map<string, string>();
  for (const dir of readdirSync(out).sort()) {
    const scenario = /^server-(.+?)-\d{4}-\d{2}-\d{2}T/.exec(dir)?.[1] ?? dir;
    let checks: Array<{ id: string; status: string }>;
    try {
      checks = JSON.parse(readFileSync(join(out, dir, 'checks.json'), 'utf8'));
    } catch {
      continue;
    }
    const seen = new Map<string, number>();
    for (const check of checks as Array<{ id: string; status: string; errorMessage?: string }>) {
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
async function startProxied(as: StartedAuthorizationServer, wardenPort: number, upstream: Record<string, unknown>) {
  const resource = `http://127.0.0.1:${wardenPort}/mcp`;
  const token = await as.mintToken({ resource, scope: 'mcp:read' });
  const injector = await startInjector(process.env.CONFORMANCE_BYPASS && typeof upstream.url === 'string' ? upstream.url : `http://127.0.0.1:${wardenPort}`, token);
  const local = (host: string) => `${host}:${injector.port}`;
  const warden = await startWarden(
    validateConfig({
      listen: { host: '127.0.0.1', port: wardenPort, allowed_hosts: [local('localhost'), local('127.0.0.1')] },
      admin: { host: '127.0.0.1', port: 0 },
      resource: { url: resource },
      authorization_servers: [{ issuer: as.issuer }],
      upstream,
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

for (const suite of SUITES) {
  describe(suite.name, () => {
    let fixture: ConformanceServer;
    let as: StartedAuthorizationServer;
    let http: Awaited<ReturnType<typeof startProxied>>;
    let stdio: Awaited<ReturnType<typeof startProxied>> | undefined;
    let direct: Map<string, string>;

    beforeAll(async () => {
      fixture = await startConformanceServer();
      const ports = [await freePort(), await freePort()] as const;
      as = await startAuthorizationServer({ resources: Object.fromEntries(ports.map((port) => [`http://127.0.0.1:${port}/mcp`, { scopes: ['mcp:read'] }])) });
      http = await startProxied(as, ports[0], { url: fixture.origin });
      // The same MCP server as one stdio child per session: sessions are then the proxy's own.
      // The suite never deletes its sessions, and all of them carry one token: one principal's many processes.
      stdio = await startProxied(as, ports[1], { command: [process.execPath, join(root, 'test/fixtures/conformance-stdio.ts')], max_processes_per_principal: 64 });
      direct = await runSuite(suite.bin, suite.args, fixture.url);
    }, 300_000);
    afterAll(async () => {
      await Promise.all([http?.close(), stdio?.close()]);
      await Promise.all([as?.close(), fixture?.close()]);
    });

    it('ends every check through injector → mcp-warden → fixture as it ends directly against the fixture', { timeout: 300_000 }, async () => {
      const proxied = await runSuite(suite.bin, suite.args, http.url);
      console.log(`${suite.name}\n  direct:               ${totals(direct)}\n  through mcp-warden:   ${totals(proxied)}`);
      expect(direct.size).toBeGreaterThan(0);
      expect(differencesOf(direct, fixture.url, proxied, http.url)).toEqual([]);
      const allowed: readonly string[] = suite.failingDirectly;
      const failing = [...direct].filter(([key, status]) => status === 'FAILURE' && !allowed.includes(key.split('/')[0]!)).map(([key]) => key);
      expect(failing).toEqual([]);
    });

    it('ends every check through mcp-warden → the fixture over stdio as directly against the fixture over HTTP', { timeout: 300_000 }, async () => {
      const proxied = await runSuite(suite.bin, suite.args, stdio!.url);
      console.log(`${suite.name}\n  direct (HTTP):        ${totals(direct)}\n  mcp-warden → stdio:   ${totals(proxied)}`);
      const differences = differencesOf(direct, fixture.url, proxied, stdio!.url);
      expect(differences.filter((difference) => !STDIO_CANNOT.some((key) => difference.startsWith(`${key}: direct SUCCESS, proxied undefined`)))).toEqual([]);
      expect([...proxied.values()].filter((status) => status === 'FAILURE')).toEqual([]);
    });
  });
}
