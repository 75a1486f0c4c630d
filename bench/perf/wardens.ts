// Starting one mcp-warden for the bench: its config (written as YAML to the run's temporary directory),
// its process, and the wait until it is ready. The targets, the SSE part and the stdio part all use it.
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import type { Authority } from './authority.ts';
import { freePorts } from '../processes.ts';
import { isAddressInUse, spawnNode, waitUntil, type Child } from './children.ts';

export const REPO = resolve(import.meta.dirname, '../..');
export const START_TIMEOUT_MS = 20_000;
/** Tries to start a child whose port another program took in the meantime. */
const START_ATTEMPTS = 3;

/** Streams one principal may hold in the SSE part's config (the schema allows at most 10,000). */
export const PER_PRINCIPAL_STREAMS = 1_000;

/** How an mcp-warden checks tokens and what it sends upstream. */
export type WardenMode = 'jwt' | 'introspection' | 'exchange';

/** The `upstream` section of a stdio mcp-warden: `command` and the process bounds (see src/config/schema.ts). */
export type StdioUpstream = Readonly<{ command: readonly string[] } & Record<string, unknown>>;

export interface WardenParts {
  readonly mode: WardenMode;
  readonly authority: Authority;
  readonly upstreamOrigin: string;
  /** The policy rule `tools/call` `delete_*` needs `mcp:admin` (the bench's tokens carry only mcp:read). */
  readonly rule?: boolean;
  /** `audit.tool_calls`; left out of the config (so the default, on) when undefined. */
  readonly audit?: boolean;
  /** Raises the connection and stream caps (the SSE part). */
  readonly limit?: number;
  /** Replaces `upstream: { url }` (the stdio part). */
  readonly stdio?: StdioUpstream;
  /** (n): the OTLP/HTTP traces URL spans go to, every trace sampled. */
  readonly tracing?: string;
  /** (m): every request limit of `limits.requests` on, high enough never to refuse; not with `limit`. */
  readonly requestLimits?: boolean;
}

export interface StartedWarden {
  readonly child: Child;
  readonly url: string;
  readonly resourceUrl: string;
  /** The admin listener (/readyz, /metrics). */
  readonly adminOrigin: string;
}

/**
 * Starts one mcp-warden and waits until it is ready. Every process is added to `children` as soon as it
 * exists, so a failure anywhere (even in a sibling started alongside) still stops it.
 */
export async function startWarden(dir: string, name: string, parts: WardenParts, children: Child[]): Promise<StartedWarden> {
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

async function startWardenOnce(dir: string, name: string, parts: WardenParts, onSpawn: (child: Child) => void): Promise<StartedWarden> {
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

/** The one policy rule of the bench: it never matches the echo call, and it hides the delete_ tools from a tools/list. */
const DELETE_RULE = { match: { method: 'tools/call', tool: 'delete_*' }, scopes: ['mcp:admin'] };

/**
 * mcp-warden's config for one target: loopback only, access log at info (part of the real cost; stdout
 * goes to /dev/null), a short shutdown grace so the bench ends quickly. `rule` adds the policy rule;
 * `audit` sets `audit.tool_calls` (left at its default, on, when undefined). `limit` raises the
 * connection and stream caps for the SSE part (defaults: 1024 connections, 512 per IP, 1000 streams, 16
 * per principal). `stdio` puts a stdio command in place of the HTTP upstream for the stdio part.
 * `exchange` is (c) with an upstream credential of type token_exchange.
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
    // A rule that never matches the echo call still makes the proxy read and judge every body.
    ...(parts.rule ? { policy: { rules: [DELETE_RULE] } } : {}),
    ...(parts.audit === undefined ? {} : { audit: { tool_calls: parts.audit } }),
    logging: { level: 'info' },
    lifecycle: { shutdown_grace: '1s' },
    ...(parts.tracing ? { tracing: { endpoint: parts.tracing, sample_ratio: 1 } } : {}),
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
    ...(parts.requestLimits ? { limits: { requests: REQUEST_LIMITS } } : {}),
  };
}

/** (m)'s limits: every scope, each bucket holding more than a whole run sends, so only their cost is measured. */
const REQUEST_LIMITS = { per_principal: 100_000_000, per_client: 100_000_000, per_ip: 100_000_000, window: '1h' };

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
