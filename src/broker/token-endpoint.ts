import type { IncomingMessage, ServerResponse } from 'node:http';
import { AuthFailure } from '../auth/failure.ts';
import type { DpopProofVerifier } from '../auth/dpop-proof.ts';
import { rawHeaderValues } from '../proxy/raw-headers.ts';
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
  /**
   * RFC 9449 §5: the thumbprint of the DPoP key a public client's refresh token is bound to; a refresh
   * must prove that key. Absent for unbound tokens and for confidential clients (bound by their credentials).
   */
  readonly jkt?: string;
}

/** The token endpoint's DPoP settings; `verifier` is undefined when `tokens.dpop.mode` is off. */
export interface TokenEndpointDpop {
  readonly verifier: DpopProofVerifier | undefined;
  /** The token endpoint's public URL, from the issuer (never the request's Host): the proofs' `htu`. */
  readonly url: string;
  /** Longest proof read; a longer one is refused unread. */
  readonly maxProofBytes: number;
}

/** Proof ids are remembered per scope: the broker's token endpoint has its own. */
const REPLAY_SCOPE = 'broker-token-endpoint';

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
  readonly dpop: TokenEndpointDpop;
}

/**
 * RFC 6749 §3.2 with OAuth 2.1's rules: single-use codes bound to the client, redirect URI, PKCE verifier
 * and resource; refresh tokens rotated on every use that issues tokens (a refused refresh request spends
 * nothing), and a rotated one that comes back taken as theft: the whole family (every refresh token and
 * access token of that grant) is revoked. A request with a DPoP proof (RFC 9449 §5) gets an access token
 * bound to the proof's key (`cnf.jkt`, `token_type: DPoP`); a public client's refresh token is bound to
 * the same key, and refreshes only with a proof of it.
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
      const jkt = await this.#proofKey(req);
      const client = await this.#o.clients.authenticate(req, form);
      let body: Record<string, unknown>;
      if (grantType === 'authorization_code') body = await this.#authorizationCode(client, form, jkt);
      else if (grantType === 'refresh_token') body = await this.#refreshToken(client, form, jkt);
      else throw new OAuthError('unsupported_grant_type', 'grant_type must be authorization_code or refresh_token');
      this.#o.onGrant(label, 'ok');
      sendJson(res, 200, body, { ...PUBLIC_CORS, pragma: 'no-cache' });
    } catch (error) {
      if (error instanceof OAuthError) this.#o.onGrant(label, error.code);
      throw error;
    }
  }

  /**
   * The thumbprint of the key the request's DPoP proof (RFC 9449 §4.3) is signed with, or undefined when
   * there is no `DPoP` header. The proof must be the only one, about POST to this endpoint's public URL.
   * With DPoP off a proof is refused rather than ignored: a bound token could never be used at the
   * resource, and a Bearer token would be a downgrade the client asked not to have.
   */
  async #proofKey(req: IncomingMessage): Promise<string | undefined> {
    const proofs = rawHeaderValues(req.rawHeaders, 'dpop');
    if (proofs.length === 0) return undefined;
    const { verifier, url, maxProofBytes } = this.#o.dpop;
    if (!verifier) throw new OAuthError('invalid_dpop_proof', 'DPoP is not enabled at this server');
    if (proofs.length > 1) throw new OAuthError('invalid_dpop_proof', 'a token request takes exactly one DPoP proof header');
    const proof = proofs[0]!;
    if (proof.length > maxProofBytes) throw new OAuthError('invalid_dpop_proof', 'the DPoP proof is too large');
    try {
      return (await verifier.verify(proof, { method: 'POST', url, replayScope: REPLAY_SCOPE })).jkt;
    } catch (error) {
      if (!(error instanceof AuthFailure)) throw error;
      // RFC 9449 §8: the client retries with the nonce the DPoP-Nonce header carries.
      if (error.reason === 'dpop_nonce_required') throw new OAuthError('use_dpop_nonce', 'the DPoP proof must carry the server nonce', 400, { 'dpop-nonce': verifier.currentNonce() });
      throw new OAuthError('invalid_dpop_proof', PROOF_REFUSALS[error.reason] ?? 'the DPoP proof is invalid');
    }
  }

  async #authorizationCode(client: BrokerClient, form: FormParams, jkt: string | undefined): Promise<Record<string, unknown>> {
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
    return (await this.#issue(client, { clientId: client.client_id, subject: grant.subject, resource: request.resource, scope: request.scope, grantId: grant.grantId }, jkt)).body;
  }

  async #refreshToken(client: BrokerClient, form: FormParams, jkt: string | undefined): Promise<Record<string, unknown>> {
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
    // RFC 9449 §5: a bound refresh token is used only with a proof of its key. Checked before the replay
    // test: whoever holds a rotated bound token without its key can neither use it nor revoke the grant.
    if (grant.jkt !== undefined && jkt === undefined) throw new OAuthError('invalid_dpop_proof', 'this refresh token is bound to a DPoP key: a proof of it is required');
    if (grant.jkt !== undefined && jkt !== grant.jkt) throw new OAuthError('invalid_dpop_proof', 'the DPoP proof key is not the key the refresh token is bound to');
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
    const issued = await this.#issue(client, grant, jkt, scope);
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
   * refresh token, for a caller that ends up not sending it. With `jkt` (the request's proof key) the
   * access token is bound to it, and so is a public client's refresh token; a confidential client's
   * refresh tokens stay unbound (RFC 9449 §5: its credentials already bind them).
   */
  async #issue(client: BrokerClient, grant: RefreshGrant, jkt: string | undefined, scope = grant.scope): Promise<{ body: Record<string, unknown>; refreshKey?: string }> {
    const accessToken = await this.#o.accessTokens.issue({ ...grant, scope, jkt });
    const body: Record<string, unknown> = {
      access_token: accessToken,
      token_type: jkt === undefined ? 'Bearer' : 'DPoP',
      expires_in: this.#o.accessTokens.ttlSeconds,
      scope: scope.join(' '),
    };
    if (!client.grant_types.includes('refresh_token')) return { body };
    const refreshToken = newSecret();
    const refreshKey = hashSecret(refreshToken);
    const record: RefreshGrant = { clientId: grant.clientId, subject: grant.subject, resource: grant.resource, scope: grant.scope, grantId: grant.grantId };
    const bound = client.token_endpoint_auth_method === 'none' ? jkt : undefined;
    await this.#o.store.put('refresh', refreshKey, bound === undefined ? record : { ...record, jkt: bound }, Date.now() + this.#o.refreshTtlMs);
    body.refresh_token = refreshToken;
    return { body, refreshKey };
  }
}

/** What a client is told about a refused proof: fixed descriptions, one per defect. */
const PROOF_REFUSALS: Partial<Record<string, string>> = {
  dpop_invalid_proof: 'the DPoP proof is invalid',
  dpop_algorithm: 'the DPoP proof algorithm is not accepted',
  dpop_private_key: 'the DPoP proof key must be a public key',
  dpop_method_mismatch: 'the DPoP proof is for another method',
  dpop_url_mismatch: 'the DPoP proof is for another URL',
  dpop_stale: 'the DPoP proof is too old or dated in the future',
  dpop_replayed: 'the DPoP proof was used before',
};
