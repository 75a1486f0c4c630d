import type { AccessTokens } from './access-tokens.ts';
import type { BrokerClient } from './client-metadata.ts';
import { OAuthError, refusal, type FormParams } from './http.ts';
import { hashSecret, newSecret } from './secrets.ts';
import type { BrokerStore } from './store.ts';

/** A refresh token's record, kept under its hash; rotation issues the next one, then marks this one used. */
export interface RefreshGrant {
  readonly clientId: string;
  readonly subject: string;
  readonly resource: string;
  readonly scope: readonly string[];
  readonly grantId: string;
  /**
   * RFC 9449 §5: the thumbprint of the DPoP key a public client's refresh token is bound to; a refresh
   * must prove that key. Absent for unbound tokens and for confidential clients (bound by their credentials).
   */
  readonly jkt?: string;
}

export interface Issued {
  readonly body: Record<string, unknown>;
  /** The stored refresh token's key, for a caller that ends up not sending it. */
  readonly refreshKey?: string;
}

/** Signs access tokens and keeps refresh tokens: the one place every grant ends. */
export class TokenIssuer {
  readonly #store: BrokerStore;
  readonly #accessTokens: AccessTokens;
  readonly #refreshTtlMs: number;

  constructor(store: BrokerStore, accessTokens: AccessTokens, refreshTtlMs: number) {
    this.#store = store;
    this.#accessTokens = accessTokens;
    this.#refreshTtlMs = refreshTtlMs;
  }

  /**
   * Signs the access token and, when `refresh` and the client may have one, stores the next refresh token;
   * the caller sends `body`. `scope` may narrow the access token (RFC 6749 §6); the refresh token keeps the
   * whole grant. With `jkt` (the request's proof key) the access token is bound to it, and so is a public
   * client's refresh token; a confidential client's refresh tokens stay unbound (RFC 9449 §5: its
   * credentials already bind them). `machine`: the grant is the client's own (client credentials); any
   * other grant is a user's, and one whose subject is the client id is refused, since the resource side
   * takes `sub` = `client_id` for a machine (policy `principal: machine`).
   */
  async issue(client: BrokerClient, grant: RefreshGrant, jkt: string | undefined, options: { scope?: readonly string[]; refresh: boolean; machine?: boolean }): Promise<Issued> {
    if (!options.machine && grant.subject === grant.clientId) throw refusal('invalid_grant', 'subject_is_client', "the user's identifier is this client's id: the token would read as a machine's");
    const scope = options.scope ?? grant.scope;
    const accessToken = await this.#accessTokens.issue({ ...grant, scope, jkt });
    const body: Record<string, unknown> = {
      access_token: accessToken,
      token_type: jkt === undefined ? 'Bearer' : 'DPoP',
      expires_in: this.#accessTokens.ttlSeconds,
      // RFC 6749 §5.1: scope may be left out; an empty one would read as a scope named "".
      ...(scope.length > 0 ? { scope: scope.join(' ') } : {}),
    };
    if (!options.refresh || !client.grant_types.includes('refresh_token')) return { body };
    const refreshToken = newSecret();
    const refreshKey = hashSecret(refreshToken);
    const record: RefreshGrant = { clientId: grant.clientId, subject: grant.subject, resource: grant.resource, scope: grant.scope, grantId: grant.grantId };
    const bound = client.token_endpoint_auth_method === 'none' ? jkt : undefined;
    await this.#store.put('refresh', refreshKey, bound === undefined ? record : { ...record, jkt: bound }, Date.now() + this.#refreshTtlMs);
    body.refresh_token = refreshToken;
    return { body, refreshKey };
  }
}

/** RFC 8707 §2.2: a `resource` in the token request must be the one the grant is for. */
export function checkResource(form: FormParams, resource: string): void {
  const asked = form.get('resource');
  if (asked !== undefined && asked !== resource) throw new OAuthError('invalid_target', 'tokens are issued only for the resource of the grant', 400, {}, 'wrong_resource');
}
