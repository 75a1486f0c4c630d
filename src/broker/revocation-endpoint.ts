import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AccessTokens } from './access-tokens.ts';
import type { ClientRegistry } from './clients.ts';
import { OAuthError, PUBLIC_CORS, readForm } from './http.ts';
import type { Revocations } from './revocations.ts';
import { hashSecret } from './secrets.ts';
import type { BrokerStore } from './store.ts';

export interface RevocationOptions {
  readonly store: BrokerStore;
  readonly clients: ClientRegistry;
  readonly accessTokens: AccessTokens;
  readonly revocations: Revocations;
  readonly onRevoke: (kind: 'refresh_token' | 'access_token' | 'unknown') => void;
}

/**
 * RFC 7009. A refresh token takes its whole grant with it (§2.1: the access tokens of the grant should
 * go too); an access token is denied by its `jti` until it expires. Unknown and already-revoked tokens
 * get the same 200 (§2.2), so the endpoint tells nobody which tokens exist.
 */
export async function handleRevocation(options: RevocationOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const form = await readForm(req);
  const client = await options.clients.authenticate(req, form);
  const token = form.get('token');
  if (!token) throw new OAuthError('invalid_request', 'token is required');
  const hint = form.get('token_type_hint');
  const refresh = hint === 'access_token' ? undefined : await options.store.get<{ clientId: string; grantId: string }>('refresh', hashSecret(token));
  if (refresh) {
    if (refresh.clientId !== client.client_id) throw new OAuthError('invalid_request', 'the token was not issued to this client');
    await options.revocations.revokeGrant(refresh.grantId);
    options.onRevoke('refresh_token');
  } else {
    const claims = await options.accessTokens.read(token);
    if (claims && typeof claims.jti === 'string' && typeof claims.exp === 'number' && claims.exp * 1000 > Date.now()) {
      if (claims.client_id !== client.client_id) throw new OAuthError('invalid_request', 'the token was not issued to this client');
      await options.revocations.revokeToken(claims.jti, claims.exp * 1000);
      options.onRevoke('access_token');
    } else {
      options.onRevoke('unknown');
    }
  }
  res.writeHead(200, { ...PUBLIC_CORS, 'cache-control': 'no-store', 'content-length': '0' });
  res.end();
}
