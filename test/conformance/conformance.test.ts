// The official MCP conformance suite's server scenarios, run twice per suite version and requirement
// set: directly against our fixture server, and through a token injector and mcp-warden. The proxy is
// transparent when every check ends the same way both times. `npm run test:conformance`.
//
// Investigating a difference: CONFORMANCE_SCENARIO narrows a run to one scenario (0.1.16 only: the
// 0.2.0 filter does not combine with --requirements), CONFORMANCE_LOG=/tmp/warden.log writes the
// proxy's access lines, CONFORMANCE_BYPASS=1 points the injector straight at the fixture to tell the
// proxy from the test chain.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAuthorizationServer, type StartedAuthorizationServer } from '../../demo/authorization-server.ts';
import { startConformanceServer, type ConformanceServer } from '../fixtures/conformance-server.ts';
import { freePort } from '../helpers/stack.ts';
import { root, startProxied, suiteRunner, totals, type Proxied } from './suite-runner.ts';

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
// CONFORMANCE_SCENARIO narrows a run to one scenario while investigating a difference.
const ONLY = process.env.CONFORMANCE_SCENARIO ? ['--scenario', process.env.CONFORMANCE_SCENARIO] : [];
const runner = suiteRunner('conformance-');
const runSuite = (bin: string, args: readonly string[], url: string) => runner.run(bin, [...args, ...ONLY], url);

for (const suite of SUITES) {
  describe(suite.name, () => {
    let fixture: ConformanceServer;
    let as: StartedAuthorizationServer;
    let http: Proxied;
    let stdio: Proxied | undefined;
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
      expect(runner.differencesOf(direct, fixture.url, proxied, http.url)).toEqual([]);
      const allowed: readonly string[] = suite.failingDirectly;
      const failing = [...direct].filter(([key, status]) => status === 'FAILURE' && !allowed.includes(key.split('/')[0]!)).map(([key]) => key);
      expect(failing).toEqual([]);
    });

    it('ends every check through mcp-warden → the fixture over stdio as directly against the fixture over HTTP', { timeout: 300_000 }, async () => {
      const proxied = await runSuite(suite.bin, suite.args, stdio!.url);
      console.log(`${suite.name}\n  direct (HTTP):        ${totals(direct)}\n  mcp-warden → stdio:   ${totals(proxied)}`);
      const differences = runner.differencesOf(direct, fixture.url, proxied, stdio!.url);
      expect(differences.filter((difference) => !STDIO_CANNOT.some((key) => difference.startsWith(`${key}: direct SUCCESS, proxied undefined`)))).toEqual([]);
      expect([...proxied.values()].filter((status) => status === 'FAILURE')).toEqual([]);
    });
  });
}
