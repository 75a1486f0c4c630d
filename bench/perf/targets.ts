// The systems under test and how to reach them. Every target gets the same MCP request (a tools/call
// POST); only the port and, for mcp-warden, the Authorization header differ.
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import type { Authority } from './authority.ts';
import { freePort, freePorts } from '../processes.ts';
import { isAddressInUse, spawnNode, waitUntil, type Child } from './children.ts';

export const REPO = resolve(import.meta.dirname, '../..');
const START_TIMEOUT_MS = 20_000;
/** Tries to start a child whose port another program took in the meantime. */
const START_ATTEMPTS = 3;

export const BODY = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}';
export const BASE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
};
/** What the upstream answers; every target must pass it through unchanged. */
export const EXPECTED_RESPONSE = '{"jsonrpc":"2.0","id":1,"result":{}}';

export type TargetId = 'a' | 'b' | 'c' | 'd' | 'e' | 'f' | 'g';

export interface Target {
  readonly id: TargetId;
  readonly label: string;
  /** The MCP endpoint to load, e.g. http://127.0.0.1:40001/mcp */
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  /** The process whose CPU and memory are measured; none for (a), which has no proxy. */
  readonly proxy: Child | undefined;
  /** mcp-warden's admin listener (its /metrics); none for (a) and (b). */
  readonly adminOrigin?: string;
}

export interface Stack {
  readonly upstream: Child;
  readonly upstreamOrigin: string;
  readonly targets: readonly Target[];
  /** Starts one more mcp-warden, with stream and connection limits raised, for the SSE part. */
  startSseWarden(limit: number): Promise<{ child: Child; url: string; tokens: string[] }>;
  /** Starts one more mcp-warden whose upstream is the stdio command, for the stdio part. */
  startStdioWarden(upstream: StdioUpstream): Promise<StdioWarden>;
  close(): Promise<void>;
}

/** What kind of mcp-warden a config is for. */
type WardenMode = 'jwt' | 'introspection' | 'policy' | 'exchange';

/** The `upstream` section of a stdio mcp-warden: `command` and the process bounds (see src/config/schema.ts). */
export type StdioUpstream = Readonly<{ command: readonly string[] } & Record<string, unknown>>;

export interface StdioWarden {
  readonly child: Child;
  readonly url: string;
  /** The admin listener, for /metrics. */
  readonly adminOrigin: string;
  /** A valid RS256 access token for this mcp-warden; one subject is one principal. */
  mintToken(subject: string): Promise<string>;
}

interface WardenParts {
  readonly mode: WardenMode;
  readonly authority: Authority;
  readonly upstreamOrigin: string;
  /** Raises the connection and stream caps (the SSE part). */
  readonly limit?: number;
  /** Replaces `upstream: { url }` (the stdio part). */
  readonly stdio?: StdioUpstream;
}

interface WardenSpec {
  readonly id: TargetId;
  readonly label: string;
  readonly mode: WardenMode;
  readonly token: (resourceUrl: string) => Promise<string>;
}

export async function startStack(dir: string, authority: Authority): Promise<Stack> {
  const children: Child[] = [];
  const close = async () => {
    await Promise.all(children.map((child) => child.stop()));
  };
  try {
    const upstreamPort = await freePort();
    const upstreamOrigin = `http://127.0.0.1:${upstreamPort}`;
    const upstream = spawnNode('upstream', join(REPO, 'bench/perf/upstream.ts'), ['--port', String(upstreamPort)], { cwd: REPO, stderrPath: join(dir, 'upstream.stderr') });
    children.push(upstream);
    await waitUntil(upstream, 'listening', START_TIMEOUT_MS, () => answers200(`${upstreamOrigin}/mcp`, BASE_HEADERS));

    const floorPort = await freePort();
    const floor = spawnNode('floor', join(REPO, 'bench/perf/floor.ts'), ['--port', String(floorPort), '--upstream', upstreamOrigin], { cwd: REPO, stderrPath: join(dir, 'floor.stderr') });
    children.push(floor);

    const specs: WardenSpec[] = [
      { id: 'c', label: 'mcp-warden JWT RS256', mode: 'jwt', token: (aud) => authority.mintJwt('RS256', aud) },
      { id: 'd', label: 'mcp-warden JWT ES256', mode: 'jwt', token: (aud) => authority.mintJwt('ES256', aud) },
      { id: 'e', label: 'mcp-warden introspection (warm cache)', mode: 'introspection', token: async (aud) => authority.mintOpaque(aud) },
      { id: 'f', label: 'mcp-warden JWT RS256 + policy rules', mode: 'policy', token: (aud) => authority.mintJwt('RS256', aud) },
      // One token, so after the check below (its first request makes the one exchange) the cache always hits.
      { id: 'g', label: 'mcp-warden JWT RS256 + token exchange (warm cache)', mode: 'exchange', token: (aud) => authority.mintJwt('RS256', aud) },
    ];
    // Started together: start-up is mostly module loading, and the machine has two cores to spend on it.
    // allSettled, not all: on a failure every sibling must have spawned before close() runs, or it would be left behind.
    const settled = await Promise.allSettled(
      specs.map(async (spec): Promise<Target> => {
        const started = await startWarden(dir, spec.id, { mode: spec.mode, authority, upstreamOrigin }, children);
        const headers = { ...BASE_HEADERS, authorization: `Bearer ${await spec.token(started.resourceUrl)}` };
        return { id: spec.id, label: spec.label, url: started.url, headers, proxy: started.child, adminOrigin: started.adminOrigin };
      }),
    );
    const wardens = settled.map((result) => {
      if (result.status === 'rejected') throw result.reason;
      return result.value;
    });
    const floorUrl = `http://127.0.0.1:${floorPort}/mcp`;
    await waitUntil(floor, 'listening', START_TIMEOUT_MS, () => answers200(floorUrl, BASE_HEADERS));

    const targets: Target[] = [
      { id: 'a', label: 'direct to upstream', url: `${upstreamOrigin}/mcp`, headers: BASE_HEADERS, proxy: undefined },
      { id: 'b', label: 'Node floor (http-proxy-3, no auth)', url: floorUrl, headers: BASE_HEADERS, proxy: floor },
      ...wardens,
    ];
    // A benchmark of 401s or 502s would measure nothing: every target must answer the real request first.
    for (const target of targets) await assertAnswers(target);

    const startSseWarden = async (limit: number) => {
      const started = await startWarden(dir, 'sse', { mode: 'jwt', authority, upstreamOrigin, limit }, children);
      // Several principals share the streams, as real clients would; each stays under the per-principal cap.
      const principals = Math.max(1, Math.ceil(limit / PER_PRINCIPAL_STREAMS));
      const tokens = await Promise.all(Array.from({ length: principals }, (_, i) => authority.mintJwt('RS256', started.resourceUrl, `bench-sse-${i}`)));
      return { child: started.child, url: started.url, tokens };
    };
    const startStdioWarden = async (stdio: StdioUpstream) => {
      const started = await startWarden(dir, 'stdio', { mode: 'jwt', authority, upstreamOrigin, stdio }, children);
      const mintToken = (subject: string) => authority.mintJwt('RS256', started.resourceUrl, subject);
      return { child: started.child, url: started.url, adminOrigin: started.adminOrigin, mintToken };
    };
    return { upstream, upstreamOrigin, targets, startSseWarden, startStdioWarden, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** Streams one principal may hold in the SSE part's config (the schema allows at most 10,000). */
export const PER_PRINCIPAL_STREAMS = 1_000;

/**
 * Starts one mcp-warden and waits until it is ready. Every process is added to `children` as soon as it
 * exists, so a failure anywhere (even in a sibling started alongside) still stops it.
 */
async function startWarden(
  dir: string,
  name: string,
  parts: WardenParts,
  children: Child[],
): Promise<StartedWarden> {
  for (let attempt = 1; ; attempt += 1) {
    let spawned: Child | undefined;
    try {
      return await startWardenOnce(dir, name, parts, (child) => {
        spawned = child;
        children.push(child);
      });
    } catch (error) {
      if (attempt >= START_ATTEMPTS || !spawned || !isAddressInUse(spawned)) throw error;
    }
  }
}

async function startWardenOnce(
  dir: string,
  name: string,
  parts: WardenParts,
  onSpawn: (child: Child) => void,
): Promise<StartedWarden> {
  const [port, adminPort] = (await freePorts(2)) as [number, number];
  const url = `http://127.0.0.1:${port}/mcp`;
  const configPath = join(dir, `warden-${name}.yaml`);
  writeFileSync(configPath, stringify(wardenConfig({ ...parts, port, adminPort, resourceUrl: url })));
  const child = spawnNode(`mcp-warden (${name})`, join(REPO, 'src/cli.ts'), ['--config', configPath], {
    cwd: REPO,
    // The client secrets (introspection, token exchange) reach the proxy through its environment, as in production.
    env: { BENCH_INTROSPECTION_SECRET: parts.authority.clientSecret, BENCH_EXCHANGE_SECRET: parts.authority.clientSecret },
    stderrPath: join(dir, `warden-${name}.stderr`),
  });
  onSpawn(child);
  // /readyz is 200 once the keys are fetched (or the introspection endpoint is known).
  await waitUntil(child, 'ready', START_TIMEOUT_MS, async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`, { signal: AbortSignal.timeout(1_000) })).status === 200);
  return { child, url, resourceUrl: url, adminOrigin: `http://127.0.0.1:${adminPort}` };
}

interface StartedWarden {
  readonly child: Child;
  readonly url: string;
  readonly resourceUrl: string;
  /** The admin listener (/readyz, /metrics). */
  readonly adminOrigin: string;
}

/**
 * mcp-warden's config for one target: loopback only, access log at info (part of the real cost; stdout
 * goes to /dev/null), a short shutdown grace so the bench ends quickly. `limit` raises the connection and
 * stream caps for the SSE part (defaults: 1024 connections, 512 per IP, 1000 streams, 16 per principal).
 * `stdio` puts a stdio command in place of the HTTP upstream for the stdio part. `exchange` is (c) with an
 * upstream credential of type token_exchange.
 */
function wardenConfig(parts: WardenParts & { port: number; adminPort: number; resourceUrl: string }) {
  const { authority, mode, limit } = parts;
  const server =
    mode === 'introspection'
      ? {
          issuer: authority.issuer,
          verify_jwt: false,
          introspection: { endpoint: authority.introspectionEndpoint, client_id: authority.clientId, client_secret: '${env:BENCH_INTROSPECTION_SECRET}' },
        }
      : // jwks_uri is given so that no discovery is needed; both algorithms are allowed so (c) and (d) differ only in the token.
        { issuer: authority.issuer, jwks_uri: authority.jwksUri, algorithms: ['RS256', 'ES256'] };
  return {
    listen: { host: '127.0.0.1', port: parts.port },
    admin: { host: '127.0.0.1', port: parts.adminPort },
    resource: { url: parts.resourceUrl, name: 'mcp-warden perf bench', scopes_supported: ['mcp:read'] },
    authorization_servers: [server],
    tokens: { required_scopes: ['mcp:read'] },
    upstream: parts.stdio ?? { url: parts.upstreamOrigin, ...(mode === 'exchange' ? { credential: exchangeCredential(authority) } : {}) },
    // A rule that never matches this request's tool still makes the proxy read and judge every body.
    ...(mode === 'policy' ? { policy: { rules: [{ match: { method: 'tools/call', tool: 'delete_*' }, scopes: ['mcp:admin'] }] } } : {}),
    logging: { level: 'info' },
    lifecycle: { shutdown_grace: '1s' },
    ...(limit === undefined
      ? {}
      : {
          limits: {
            max_connections: limit * 2,
            max_connections_per_ip: limit * 2,
            max_streams: limit * 2,
            max_streams_per_principal: PER_PRINCIPAL_STREAMS,
          },
        }),
  };
}

/** (g): each verified token exchanged (RFC 8693) for one for the upstream; the bench's AS answers at its token endpoint. */
function exchangeCredential(authority: Authority) {
  return {
    type: 'token_exchange',
    token_endpoint: authority.tokenEndpoint,
    client_id: authority.clientId,
    client_secret: '${env:BENCH_EXCHANGE_SECRET}',
    audience: 'legacy',
  };
}

/** One request as the load generator sends it; true on a 200. */
async function answers200(url: string, headers: Readonly<Record<string, string>>): Promise<boolean> {
  const response = await fetch(url, { method: 'POST', headers, body: BODY, signal: AbortSignal.timeout(2_000) });
  await response.arrayBuffer();
  return response.status === 200;
}

async function assertAnswers(target: Target): Promise<void> {
  const response = await fetch(target.url, { method: 'POST', headers: target.headers, body: BODY, signal: AbortSignal.timeout(5_000) });
  const text = await response.text();
  if (response.status !== 200 || text !== EXPECTED_RESPONSE) {
    throw new Error(`(${target.id}) ${target.label} answered ${response.status} ${text.slice(0, 300)}: refusing to benchmark it`);
  }
}
