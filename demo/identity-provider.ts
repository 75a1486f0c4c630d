// An identity provider of the kind broker mode exists for: oidc-provider on 127.0.0.1 as a plain
// OpenID Connect provider, with no dynamic client registration, no resource indicators, and one
// pre-registered confidential client (the broker). Its login approves at once as the current account.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider, { type Configuration } from 'oidc-provider';
import { serveProvider } from './authorization-server.ts';

export interface StartedIdentityProvider {
  readonly issuer: string;
  /** The broker's registration here. */
  readonly client: { readonly client_id: string; readonly client_secret: string };
  /** Who the next login signs in as. */
  signInAs(account: string): void;
  /** How many requests reached a path (e.g. `/token`) so far. */
  requestCount(path: string): number;
  close(): Promise<void>;
}

export interface IdentityProviderOptions {
  readonly redirectUri: string;
  readonly account?: string;
  readonly port?: number;
  /** Access token life; short ones let a test see the broker refresh them. */
  readonly accessTokenTtlSeconds?: number;
  /** Issue refresh tokens to the broker (for per-user upstream tokens). */
  readonly refreshTokens?: boolean;
}

export async function startIdentityProvider(options: IdentityProviderOptions): Promise<StartedIdentityProvider> {
  const server = createServer();
  server.listen(options.port ?? 0, '127.0.0.1');
  await once(server, 'listening');
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = { client_id: 'mcp-warden-broker', client_secret: randomBytes(24).toString('base64url') };
  let account = options.account ?? 'idp-user-1';

  const configuration: Configuration = {
    clients: [
      {
        ...client,
        redirect_uris: [options.redirectUri],
        grant_types: options.refreshTokens ? ['authorization_code', 'refresh_token'] : ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    ttl: { AccessToken: options.accessTokenTtlSeconds ?? 600, AuthorizationCode: 60, IdToken: 600, RefreshToken: 86_400, Interaction: 600, Session: 86_400, Grant: 86_400 },
    scopes: ['openid', 'profile', 'email'],
    claims: { openid: ['sub'], email: ['email'], profile: ['name'] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    findAccount: async (_ctx, accountId) => ({ accountId, claims: async () => ({ sub: accountId, email: `${accountId}@example.test`, name: accountId }) }),
    interactions: { url: async (_ctx, interaction) => `/interaction/${interaction.uid}` },
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      registration: { enabled: false },
      resourceIndicators: { enabled: false },
    },
  };
  const counts = new Map<string, number>();
  server.on('request', serveProvider(new Provider(issuer, configuration), counts, () => account));
  return {
    issuer,
    client,
    signInAs: (next) => (account = next),
    requestCount: (path) => counts.get(path) ?? 0,
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}
