import { pino } from 'pino';
import { startAuthorizationServer, type StartedAuthorizationServer, type UpstreamOptions } from '../../demo/authorization-server.ts';
import { startMcpServer, type StartedMcpServer } from '../../demo/mcp-server.ts';
import { validateConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { startWarden, type Warden } from '../../src/server.ts';

export const SCOPES = ['mcp:read', 'mcp:write'];

export interface Stack {
  readonly as: StartedAuthorizationServer;
  readonly mcp: StartedMcpServer;
  readonly warden: Warden;
  /** The protected MCP endpoint, as clients see it (also the token audience). */
  readonly mcpUrl: string;
  readonly config: Config;
  readonly logs: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

type RawConfig = Record<string, unknown>;

/**
 * Real parts on 127.0.0.1: oidc-provider, the SDK MCP server, and mcp-warden in front. The warden
 * listens first so that its URL (and so the resource, which tokens are minted for) is known.
 */
export async function startStack(
  overrides: (base: RawConfig, as: StartedAuthorizationServer) => RawConfig = (base) => base,
  options: { port?: number; format?: 'jwt' | 'opaque'; scopes?: readonly string[]; resourcePath?: string; upstream?: UpstreamOptions; defaultResource?: boolean } = {},
): Promise<Stack> {
  const mcp = await startMcpServer();
  const port = options.port ?? (await freePort());
  const mcpUrl = `http://127.0.0.1:${port}${options.resourcePath ?? '/mcp'}`;
  const format = options.format ?? 'jwt';
  const as = await startAuthorizationServer({
    resources: { [mcpUrl]: { scopes: options.scopes ?? SCOPES, format }, 'http://127.0.0.1:1/other': { scopes: SCOPES, format } },
    upstream: options.upstream,
    // A request naming no resource (a 2025-03-26 client's) is for the MCP server behind this stack.
    ...(options.defaultResource ? { defaultResource: mcpUrl } : {}),
  });
  const config = validateConfig(
    overrides({
      listen: { host: '127.0.0.1', port },
      admin: { host: '127.0.0.1', port: 0 },
      resource: { url: mcpUrl, name: 'Test MCP server', scopes_supported: SCOPES },
      authorization_servers: [{ issuer: as.issuer }],
      tokens: { clock_tolerance: '0s' },
      upstream: { url: mcp.origin },
      lifecycle: { shutdown_grace: '2s' },
    }, as),
  );
  const logs: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
  const minted: string[] = [];
  const mintToken = as.mintToken.bind(as);
  as.mintToken = async (request) => {
    const token = await mintToken(request);
    minted.push(token);
    return token;
  };
  const warden = await startWarden(config, { logger });
  await waitFor(() => warden.readiness.ready, 'warden ready');
  return {
    as,
    mcp,
    warden,
    mcpUrl,
    config,
    logs,
    async close() {
      await warden.shutdown();
      await Promise.all([as.close(), mcp.close()]);
      assertNothingSecretLogged(logs, [...minted, as.introspectionClient.client_secret, ...testSecrets()]);
    },
  };
}

/** Tests put this in tool and prompt arguments: the audit logs a hash of the arguments, never them. */
export const ARGUMENT_SENTINEL = 'argument-sentinel-5b1e9c';

/**
 * Every stack checks its own log lines when it closes, so the whole integration suite proves that no
 * token (JWT-shaped, or one the AS minted), no Authorization value, no configured secret and no tool
 * argument (the sentinel) is logged.
 */
export function assertNothingSecretLogged(logs: ReadonlyArray<Record<string, unknown>>, secrets: readonly string[]): void {
  const text = JSON.stringify(logs);
  const leaks = [
    /eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/.exec(text)?.[0],
    /bearer [A-Za-z0-9._~+/-]{8,}/i.exec(text)?.[0],
    /basic [A-Za-z0-9+/=]{8,}/i.exec(text)?.[0],
    ...[...secrets, ARGUMENT_SENTINEL].filter((secret) => secret.length >= 6 && text.includes(secret)),
  ].filter(Boolean);
  if (leaks.length > 0) throw new Error(`secrets in the logs: ${leaks.map((leak) => String(leak).slice(0, 12)).join(', ')}…`);
}

/** Values the tests put in WARDEN_TEST_* variables: upstream keys, introspection secrets. */
function testSecrets(): string[] {
  return Object.entries(process.env)
    .filter(([name, value]) => name.startsWith('WARDEN_TEST_') && value !== undefined)
    .map(([, value]) => value!);
}

export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as import('node:net').AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A JSON-RPC initialize body, as an MCP client sends it first. */
export const INITIALIZE = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw-test', version: '1' } },
});

export const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
