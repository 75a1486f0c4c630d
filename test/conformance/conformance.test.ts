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
 * `failingDirectly` lists the scenarios the fixture may fail without the proxy. For 2026-07-28 the
 * fixture emulates the stateless wire over SDK 1.32 (which does not speak that revision) but not
 * SEP-2322 multi-round results or the tasks extension, so some checks fail directly; what must hold
 * there, as everywhere, is that they fail the same way through the proxy.
 */
const SUITES = [
  { name: 'conformance 0.1.16', bin: 'node_modules/conformance-0.1/dist/index.js', args: [], mode: 'stateful', failingDirectly: [] },
  {
    name: 'conformance 0.2.0-alpha.12 --requirements 2025-11-25',
    bin: 'node_modules/conformance-0.2/dist/index.js',
    args: ['--requirements', '2025-11-25'],
    mode: 'stateful',
    failingDirectly: [],
  },
  {
    name: 'conformance 0.2.0-alpha.12 --requirements 2026-07-28',
    bin: 'node_modules/conformance-0.2/dist/index.js',
    args: ['--requirements', '2026-07-28'],
    mode: 'stateless',
    failingDirectly: 'any',
  },
] as const;
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

for (const suite of SUITES) {
  describe(suite.name, () => {
    let fixture: ConformanceServer;
    let as: StartedAuthorizationServer;
    let warden: Warden;
    let injector: Awaited<ReturnType<typeof startInjector>>;

    beforeAll(async () => {
      fixture = await startConformanceServer({ mode: suite.mode });
      const wardenPort = await freePort();
      const resource = `http://127.0.0.1:${wardenPort}/mcp`;
      as = await startAuthorizationServer({ resources: { [resource]: { scopes: ['mcp:read'] } } });
      const token = await as.mintToken({ resource, scope: 'mcp:read' });
      injector = await startInjector(process.env.CONFORMANCE_BYPASS ? fixture.origin : `http://127.0.0.1:${wardenPort}`, token);
      const local = (host: string) => `${host}:${injector.port}`;
      warden = await startWarden(
        validateConfig({
          listen: { host: '127.0.0.1', port: wardenPort, allowed_hosts: [local('localhost'), local('127.0.0.1')] },
          admin: { host: '127.0.0.1', port: 0 },
          resource: { url: resource },
          authorization_servers: [{ issuer: as.issuer }],
          upstream: { url: fixture.origin },
          cors: { allowed_origins: [`http://${local('localhost')}`, `http://${local('127.0.0.1')}`] },
        }),
        { logger: pino({ level: process.env.CONFORMANCE_LOG ? 'info' : 'silent' }, process.env.CONFORMANCE_LOG ? pino.destination(process.env.CONFORMANCE_LOG) : undefined) },
      );
      await waitFor(() => warden.readiness.ready, 'warden ready');
    });
    afterAll(async () => {
      await warden?.shutdown();
      await Promise.all([injector?.close(), as?.close(), fixture?.close()]);
    });

    it('ends every check through injector → mcp-warden → fixture as it ends directly against the fixture', { timeout: 300_000 }, async () => {
      const direct = await runSuite(suite.bin, suite.args, fixture.url);
      const proxied = await runSuite(suite.bin, suite.args, `http://127.0.0.1:${injector.port}/mcp`);
      console.log(`${suite.name}\n  direct:               ${totals(direct)}\n  through mcp-warden:   ${totals(proxied)}`);
      expect(direct.size).toBeGreaterThan(0);
      const differences = [...new Set([...direct.keys(), ...proxied.keys()])].filter((key) => direct.get(key) !== proxied.get(key));
      const proxiedUrl = `http://127.0.0.1:${injector.port}/mcp`;
      expect(
        differences.map((key) => `${key}: direct ${direct.get(key)}, proxied ${proxied.get(key)} (${errors.get(`${proxiedUrl} ${key}`) ?? errors.get(`${fixture.url} ${key}`) ?? 'no message'})`),
      ).toEqual([]);
      if (suite.failingDirectly !== 'any') {
        const allowed: readonly string[] = suite.failingDirectly;
        const failing = [...direct].filter(([key, status]) => status === 'FAILURE' && !allowed.includes(key.split('/')[0]!)).map(([key]) => key);
        expect(failing).toEqual([]);
      }
    });
  });
}
