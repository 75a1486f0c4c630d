// The official conformance suite's 2026-07-28 server scenarios (conformance 0.2.0-alpha.12,
// --requirements 2026-07-28) against a real SDK 2.x server (@modelcontextprotocol/server, which speaks
// that revision itself), run twice: directly, and through a token injector and mcp-warden. Where
// conformance.test.ts runs them against an emulation of the 2026-07-28 wire in front of SDK 1.x, this
// is the SDK's own implementation of it. The proxy is transparent when every check ends the same way
// both times. `npm run test:conformance`.
//
// Investigating a difference: CONFORMANCE_LOG=/tmp/warden.log writes the proxy's access lines,
// CONFORMANCE_BYPASS=1 points the injector straight at the server to tell the proxy from the test chain.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAuthorizationServer, type StartedAuthorizationServer } from '../../demo/authorization-server.ts';
import { startSdk2Server, type Sdk2Server } from '../fixtures/sdk2-server.ts';
import { freePort } from '../helpers/stack.ts';
import { startProxied, suiteRunner, totals, type Proxied } from './suite-runner.ts';

const SUITE = { bin: 'node_modules/conformance-0.2/dist/index.js', args: ['--requirements', '2026-07-28'] } as const;
/**
 * Scenarios the SDK 2.x server (2.4.0) fails directly: the tasks extension (io.modelcontextprotocol/tasks,
 * not scored for 2026-07-28), which the fixture does not implement. Everything else passes directly, so a
 * new failure elsewhere is a change in the SDK or the suite to look at.
 */
const FAILING_DIRECTLY = /^tasks-/;
const runner = suiteRunner('conformance-sdk2-');
/** Runs the suite against `url`. */
const runSuite = (url: string) => runner.run(SUITE.bin, SUITE.args, url);

describe('conformance 0.2.0-alpha.12 --requirements 2026-07-28 against the SDK 2.x server', () => {
  let fixture: Sdk2Server;
  let as: StartedAuthorizationServer;
  let proxied: Proxied;
  let direct: Map<string, string>;

  beforeAll(async () => {
    fixture = await startSdk2Server({ surface: 'conformance' });
    const port = await freePort();
    as = await startAuthorizationServer({ resources: { [`http://127.0.0.1:${port}/mcp`]: { scopes: ['mcp:read'] } } });
    proxied = await startProxied(as, port, { url: fixture.origin });
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
    expect(runner.differencesOf(direct, fixture.url, throughWarden, proxied.url)).toEqual([]);
  });

  it('passes every scored check directly, so the comparison covers the whole 2026-07-28 surface', () => {
    const failing = [...direct].filter(([key, status]) => status === 'FAILURE' && !FAILING_DIRECTLY.test(key)).map(([key]) => `${key} (${runner.errors.get(`${fixture.url} ${key}`) ?? 'no message'})`);
    expect(failing).toEqual([]);
  });
});
