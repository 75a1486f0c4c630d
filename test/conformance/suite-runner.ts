// What conformance.test.ts and conformance-sdk2.test.ts share: running the official conformance
// suite's server scenarios against a URL and reading its verdicts, comparing two runs, and starting
// mcp-warden behind a token injector for the proxied run.
//
// CONFORMANCE_LOG=/tmp/warden.log writes the proxy's access lines, CONFORMANCE_BYPASS=1 points the
// injector straight at the upstream to tell the proxy from the test chain.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createProxyServer } from 'http-proxy-3';
import { pino } from 'pino';
import type { StartedAuthorizationServer } from '../../demo/authorization-server.ts';
import { validateConfig } from '../../src/config/load.ts';
import { startWarden } from '../../src/server.ts';
import { waitFor } from '../helpers/stack.ts';

/** The repository root. */
export const root = new URL('../../', import.meta.url).pathname;
const VERDICTS = new Set(['SUCCESS', 'FAILURE', 'WARNING', 'SKIPPED']);

/** Each check's verdict, keyed by scenario, check id and order. */
export type Verdicts = Map<string, string>;

export interface SuiteRunner {
  /** Why a check failed, by run URL and check (`${url} ${key}`), to explain a difference. */
  readonly errors: Map<string, string>;
  /** Runs the suite at `bin` (relative to the repository root) with `args` against `url`. */
  run(bin: string, args: readonly string[], url: string): Promise<Verdicts>;
  /** Every check whose verdict differs between the two runs, with the reason a failing run gave. */
  differencesOf(direct: Verdicts, directUrl: string, proxied: Verdicts, proxiedUrl: string): string[];
}

/** A runner whose runs write their results under fresh temporary folders named `${tmpPrefix}XXXXXX`. */
export function suiteRunner(tmpPrefix: string): SuiteRunner {
  const errors = new Map<string, string>();
  return {
    errors,
    async run(bin, args, url) {
      const out = mkdtempSync(join(tmpdir(), tmpPrefix));
      const child = spawn(process.execPath, [join(root, bin), 'server', '--url', url, '-o', out, ...args], { cwd: out, stdio: 'ignore' });
      await once(child, 'exit');
      const verdicts: Verdicts = new Map();
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
    },
    differencesOf(direct, directUrl, proxied, proxiedUrl) {
      return [...new Set([...direct.keys(), ...proxied.keys()])]
        .filter((key) => direct.get(key) !== proxied.get(key))
        .map((key) => `${key}: direct ${direct.get(key)}, proxied ${proxied.get(key)} (${errors.get(`${proxiedUrl} ${key}`) ?? errors.get(`${directUrl} ${key}`) ?? 'no message'})`);
    },
  };
}

export function totals(verdicts: Verdicts): string {
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

export interface Proxied {
  /** The injector's MCP URL. */
  readonly url: string;
  close(): Promise<void>;
}

/** mcp-warden on `wardenPort` in front of `upstream` (its config section), behind an injector that adds a valid token. */
export async function startProxied(as: StartedAuthorizationServer, wardenPort: number, upstream: Record<string, unknown>): Promise<Proxied> {
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
