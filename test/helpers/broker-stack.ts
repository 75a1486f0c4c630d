import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { startIdentityProvider, type IdentityProviderOptions, type StartedIdentityProvider } from '../../demo/identity-provider.ts';
import { startMcpServer, type StartedMcpServer } from '../../demo/mcp-server.ts';
import { validateConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { startWarden, type Warden } from '../../src/server.ts';
import { assertNothingSecretLogged, freePort, SCOPES, waitFor } from './stack.ts';

/**
 * Broker mode against real parts: oidc-provider as an identity provider that MCP clients could not use
 * (no dynamic registration, no resource indicators, one pre-registered confidential client: the
 * broker), the SDK MCP server upstream, and mcp-warden as the broker. With `replicas` above one, the
 * replicas share the store (give a Redis one) and one public URL, the first replica's; each also listens
 * on its own port, at `replicaUrls[i]`.
 */
export interface BrokerStack {
  readonly idp: StartedIdentityProvider;
  readonly mcp: StartedMcpServer;
  readonly issuer: string;
  readonly mcpUrl: string;
  readonly replicaUrls: readonly string[];
  readonly logs: Array<Record<string, unknown>>;
  /** The first replica. */
  readonly warden: Warden;
  readonly wardens: readonly Warden[];
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** A PKCE pair (RFC 7636 S256). */
export function pkce(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

const IDP_SECRET_ENV = 'WARDEN_TEST_BROKER_IDP_SECRET';

export interface BrokerStackOptions {
  readonly replicas?: number;
  /** How the identity provider issues tokens (lifetimes, refresh tokens). */
  readonly idp?: Omit<IdentityProviderOptions, 'redirectUri'>;
  /** Changes to the whole raw config, after the broker overrides are in. */
  readonly config?: (raw: Record<string, unknown>) => Record<string, unknown>;
}

export async function startBrokerStack(brokerOverrides: Record<string, unknown> = {}, options: BrokerStackOptions = {}): Promise<BrokerStack> {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-warden-broker-'));
  const mcp = await startMcpServer();
  const ports = await Promise.all(Array.from({ length: options.replicas ?? 1 }, () => freePort()));
  const issuer = `http://127.0.0.1:${ports[0]}`;
  const mcpUrl = `${issuer}/mcp`;
  const idp = await startIdentityProvider({ ...options.idp, redirectUri: `${issuer}/oauth/callback` });
  process.env[IDP_SECRET_ENV] = idp.client.client_secret;
  const configFor = (port: number): Config =>
    validateConfig((options.config ?? ((raw) => raw))({
      listen: { host: '127.0.0.1', port },
      admin: { host: '127.0.0.1', port: 0 },
      resource: { url: mcpUrl, name: 'Broker test server', scopes_supported: SCOPES },
      tokens: { clock_tolerance: '0s' },
      upstream: { url: mcp.origin },
      lifecycle: { shutdown_grace: '1s' },
      broker: {
        identity_provider: { issuer: idp.issuer, client_id: idp.client.client_id, client_secret: `\${env:${IDP_SECRET_ENV}}`, scopes: ['openid', 'email'] },
        rate_limits: { registration: { per_ip: 1000 }, authorize: { per_ip: 1000 }, token: { per_ip: 1000 } },
        tokens: { access_ttl: '10m' },
        store: { type: 'sqlite', path: join(dir, 'broker.db') },
        ...brokerOverrides,
      },
    }));
  const logs: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
  const boot = async () => {
    const wardens = await Promise.all(ports.map((port) => startWarden(configFor(port), { logger })));
    await waitFor(() => wardens.every((warden) => warden.readiness.ready), 'wardens ready');
    return wardens;
  };
  let wardens = await boot();
  return {
    idp,
    mcp,
    issuer,
    mcpUrl,
    replicaUrls: ports.map((port) => `http://127.0.0.1:${port}`),
    logs,
    get warden() {
      return wardens[0]!;
    },
    get wardens() {
      return wardens;
    },
    async restart() {
      await Promise.all(wardens.map((warden) => warden.shutdown()));
      wardens = await boot();
    },
    async close() {
      await Promise.all(wardens.map((warden) => warden.shutdown()));
      await Promise.all([idp.close(), mcp.close()]);
      rmSync(dir, { recursive: true, force: true });
      assertNothingSecretLogged(logs, [idp.client.client_secret]);
    },
  };
}
