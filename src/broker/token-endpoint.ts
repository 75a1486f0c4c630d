import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson } from '../proxy/respond.ts';
import type { AccessTokens } from './access-tokens.ts';
import type { BrokerClient } from './client-metadata.ts';
import { presentedClientId, type ClientRegistry } from './clients.ts';
import { OAuthError, PUBLIC_CORS, rateLimited, readForm, type FormParams } from './http.ts';
import type { BrokerRateLimits } from './rate-limits.ts';
import type { LoginFlow } from './login-flow.ts';
import type { Revocations } from './revocations.ts';
import { hashSecret, newSecret, PKCE_VALUE, s256 } from './secrets.ts';
import type { BrokerStore } from './store.ts';

/** A refresh token's record, kept under its hash; rotation issues the next one, then marks this one used. */
interface RefreshGrant {
  readonly clientId: string;
  readonly subject: string;
  readonly resource: string;
  readonly scope: readonly string[];
  readonly grantId: string;
}

export interface TokenEndpointOptions {
  readonly store: BrokerStore;
  readonly clients: ClientRegistry;
  readonly login: LoginFlow;
  readonly accessTokens: AccessTokens;
  readonly revocations: Revocations;
  readonly refreshTtlMs: number;
  readonly onGrant: (grantType: string, result: string) => void;
  readonly onReplay: (kind: 'authorization_code' | 'refresh_token') => void;
  readonly limits: BrokerRateLimits;
}

/**
 * RFC 6749 §3.2 with OAuth 2.1's rules: single-use codes bound to the client, redirect URI, PKCE verifier
 * and resource; refresh tokens rotated on every use that issues tokens (a refused refresh request spends
 * nothing), and a rotated one that comes back taken as theft: the whole family (every refresh token and
 * access token of that grant) is revoked.
 */
export class TokenEndpoint {
  readonly #o: TokenEndpointOptions;

  constructor(options: TokenEndpointOptions) {
    this.#o = options;
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const form = await readForm(req);
    const grantType = form.get('grant_type');
    const label = grantType === 'authorization_code' || grantType === 'refresh_token' ? grantType : 'other';
    try {
      const wait = await this.#o.limits.take('token', req.socket.remoteAddress ?? '', presentedClientId(req, form));
      if (wait > 0) throw rateLimited('token requests', wait);
      const client = await this.#o.clients.authenticate(req, form);
      let body: Record<string, unknown>;
      if (grantType === 'authorization_code') body = await this.#authorizationCode(client, form);
      else if (grantType === 'refresh_token') body = await this.#refreshToken(client, form);
      else throw new OAuthError('unsupported_grant_type', 'grant_type must be authorization_code or refresh_token');
      this.#o.onGrant(label, 'ok');
      sendJson(res, 200, body, { ...PUBLIC_CORS, pragma: 'no-cache' });
    } catch (error) {
      if (error instanceof OAuthError) this.#o.onGrant(label, error.code);
      throw error;
    }
  }

  async #authorizationCode(client: BrokerClient, form: FormParams): Promise<Record<string, unknown>> {
    const code = form.get('code');
    if (!code) throw new OAuthError('invalid_request', 'code is required');
    const redeemed = await this.#o.login.redeemCode(code);
    if (!redeemed) throw new OAuthError('invalid_grant', 'the code is invalid or expired');
    const { grant } = redeemed;
    if (!redeemed.first) {
      // RFC 6749 §4.1.2 / OAuth 2.1 §4.1.3: a code used twice was stolen or leaked; what it issued goes too.
      this.#o.onReplay('authorization_code');
      await this.#o.revocations.revokeGrant(grant.grantId);
      throw new OAuthError('invalid_grant', 'the code was already used; the tokens issued from it are revoked');
    }
    const { request } = grant;
    if (request.client_id !== client.client_id) throw new OAuthError('invalid_grant', 'the code was issued to another client');
    const redirectUri = form.get('redirect_uri');
    if (redirectUri !== undefined ? redirectUri !== request.redirect_uri : request.redirect_uri_given) {
      throw new OAuthError('invalid_grant', 'redirect_uri does not match the authorization request');
    }
    const verifier = form.get('code_verifier');
    if (verifier === undefined || !PKCE_VALUE.test(verifier) || s256(verifier) !== request.code_challenge) {
      throw new OAuthError('invalid_grant', 'the PKCE code_verifier does not match the code_challenge');
    }
    this.#checkResource(form, request.resource);
    return (await this.#issue(client, { clientId: client.client_id, subject: grant.subject, resource: request.resource, scope: request.scope, grantId: grant.grantId })).body;
  }

  async #refreshToken(client: BrokerClient, form: FormParams): Promise<Record<string, unknown>> {
    const token = form.get('refresh_token');
    if (!token) throw new OAuthError('invalid_request', 'refresh_token is required');
    const key = hashSecret(token);
    // The request is judged whole before the token is spent: rotation is the issuing of a new token
    // (RFC 9700 §4.14.2), so a refused request (another client, invalid_target, invalid_scope) leaves the
    // token usable, and the client's corrected retry is no replay.
    const known = await this.#o.store.peek<RefreshGrant>('refresh', key);
    if (!known || (await this.#o.revocations.isGrantRevoked(known.value.grantId))) throw new OAuthError('invalid_grant', 'the refresh token is invalid, expired or revoked');
    const grant = known.value;
    if (grant.clientId !== client.client_id) throw new OAuthError('invalid_grant', 'the refresh token was issued to another client');
    // A rotated token is a replay whatever else the request asks: it is not given the chance to be refused for something else.
    if (known.used) throw await this.#replayed(grant);
    this.#checkResource(form, grant.resource);
    const asked = form.get('scope');
    let scope = grant.scope;
    if (asked !== undefined) {
      const narrowed = [...new Set(asked.split(' ').filter(Boolean))];
      if (narrowed.some((token) => !grant.scope.includes(token))) throw new OAuthError('invalid_scope', 'a refresh cannot widen the grant');
      scope = narrowed;
    }
    const issued = await this.#issue(client, grant, scope);
    // Spent last, once the new tokens exist, and atomically: among concurrent uses exactly one is first.
    // The others are replays (the winner's tokens die with the family), as is a use that came after ours.
    const used = await this.#o.store.use<RefreshGrant>('refresh', key);
    if (used?.first) return issued.body;
    // Lost (or the token expired meanwhile): the new tokens are never sent, and the stored one goes.
    const refusal = used ? await this.#replayed(grant) : new OAuthError('invalid_grant', 'the refresh token is invalid, expired or revoked');
    if (issued.refreshKey !== undefined) await this.#o.store.delete('refresh', issued.refreshKey);
    throw refusal;
  }

  /** OAuth 2.1 §4.3.1 / RFC 9700 §4.14.2: a rotated token came back, so two parties hold the family. Revokes it; returns the refusal. */
  async #replayed(grant: RefreshGrant): Promise<OAuthError> {
    this.#o.onReplay('refresh_token');
    await this.#o.revocations.revokeGrant(grant.grantId);
    return new OAuthError('invalid_grant', 'the refresh token was already used; its whole grant is revoked');
  }

  #checkResource(form: FormParams, resource: string): void {
    const asked = form.get('resource');
    if (asked !== undefined && asked !== resource) throw new OAuthError('invalid_target', 'tokens are issued only for the resource of the grant');
  }

  /**
   * Signs the access token and stores the next refresh token; the caller sends `body`. `scope` may narrow
   * the access token (RFC 6749 §6); the refresh token keeps the whole grant. `refreshKey` names the stored
   * refresh token, for a caller that ends up not sending it.
   */
  async #issue(client: BrokerClient, grant: RefreshGrant, scope = grant.scope): Promise<{ body: Record<string, unknown>; refreshKey?: string }> {
    const accessToken = await this.#o.accessTokens.issue({ ...grant, scope });
    const body: Record<string, unknown> = {
      access_token: accessToken,
      token_type: 'Bearer',
      expires_in: this.#o.accessTokens.ttlSeconds,
      scope: scope.join(' '),
    };
    if (!client.grant_types.includes('refresh_token')) return { body };
    const refreshToken = newSecret();
    const refreshKey = hashSecret(refreshToken);
    await this.#o.store.put('refresh', refreshKey, grant, Date.now() + this.#o.refreshTtlMs);
    body.refresh_token = refreshToken;
    return { body, refreshKey };
  }
}
