import { LRUCache } from 'lru-cache';
import type { Principal } from '../../auth/principal.ts';
import { tokenDigest } from '../../auth/token-digest.ts';
import type { UpstreamTokenMetrics } from '../../observability/upstream-token-metrics.ts';
import type { CredentialHeaders, UpstreamCredential } from '../credential.ts';
import { tokenHeader } from './bearer-header.ts';
import { grantForm, TokenEndpoint, TokenRequestFailure, type TokenClientConfig } from './token-endpoint.ts';

type TokenExchangeConfig = Extract<TokenClientConfig, { type: 'token_exchange' }>;

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
/** A refused exchange is remembered this long for its token, so one user cannot turn every request into a token request. */
const REFUSAL_TTL_MS = 30_000;

/**
 * The verified inbound token exchanged for one minted for the upstream: RFC 8693 token exchange, or
 * Entra ID's on-behalf-of grant. The inbound token goes to the token endpoint and nowhere else. Each
 * issued token is kept per inbound token (keyed by its SHA-256) until the earlier of the two expiries,
 * one exchange per token at a time. A refusal (`invalid_grant`: this user may not use that upstream) is
 * a 403 for the request; an outage is a 503.
 */
export class ExchangedTokens implements UpstreamCredential {
  readonly headerNames: readonly string[];
  readonly ready = true;
  readonly #config: TokenExchangeConfig;
  readonly #endpoint: TokenEndpoint;
  readonly #header: ReturnType<typeof tokenHeader>;
  readonly #metrics: UpstreamTokenMetrics;
  readonly #issued: LRUCache<string, CredentialHeaders>;
  readonly #pending = new Map<string, Promise<CredentialHeaders>>();
  readonly #grant: 'token_exchange' | 'entra_obo';

  constructor(config: TokenExchangeConfig, metrics: UpstreamTokenMetrics, allowHttp = false) {
    this.#config = config;
    this.#endpoint = new TokenEndpoint(config, allowHttp);
    this.#header = tokenHeader(config.header);
    this.headerNames = [this.#header.name];
    this.#metrics = metrics;
    this.#grant = config.profile === 'entra_obo' ? 'entra_obo' : 'token_exchange';
    this.#issued = new LRUCache({ max: config.cache_entries, ttlAutopurge: false });
  }

  missingSecrets(): Array<{ path: string; message: string }> {
    return this.#endpoint.missing();
  }

  headers(principal?: Principal, token?: string): CredentialHeaders | Promise<CredentialHeaders> {
    if (!principal || !token) return { ok: false, problem: 'token exchange needs the verified inbound token' };
    const key = tokenDigest(token);
    const cached = this.#issued.get(key);
    if (cached) {
      this.#metrics.cache('hit');
      return cached;
    }
    const pending = this.#pending.get(key);
    if (pending) {
      this.#metrics.cache('inflight');
      return pending;
    }
    this.#metrics.cache('miss');
    const exchange = this.#exchange(key, token, principal).finally(() => this.#pending.delete(key));
    this.#pending.set(key, exchange);
    return exchange;
  }

  close(): void {
    this.#endpoint.close();
  }

  async #exchange(key: string, token: string, principal: Principal): Promise<CredentialHeaders> {
    // The inbound token's own end bounds everything derived from it.
    const inboundEnd = principal.expiresAt === undefined ? Number.POSITIVE_INFINITY : principal.expiresAt * 1000;
    try {
      const issued = await this.#endpoint.request(this.#form(token));
      this.#metrics.request(this.#endpoint.label, this.#grant, 'ok');
      const answer: CredentialHeaders = { ok: true, headers: { [this.#header.name]: this.#header.value(issued.accessToken) } };
      const ttl = Math.min(issued.expiresAt, inboundEnd) - Date.now();
      if (ttl > 0) this.#issued.set(key, answer, { ttl });
      return answer;
    } catch (error) {
      const failure = error instanceof TokenRequestFailure ? error : new TokenRequestFailure('unavailable', (error as Error).message);
      this.#metrics.request(this.#endpoint.label, this.#grant, failure.kind);
      if (failure.kind !== 'refused') return { ok: false, problem: `token exchange failed: ${failure.message}` };
      // invalid_grant is about this user (403); any other OAuth error about our setup (503). Both are
      // remembered a while, so that a refused token does not turn every request into a token request.
      const refusal: CredentialHeaders =
        failure.oauthError === 'invalid_grant' ? { ok: false, refused: true, problem: failure.message } : { ok: false, problem: `token exchange refused: ${failure.message}` };
      const ttl = Math.min(REFUSAL_TTL_MS, inboundEnd - Date.now());
      if (ttl > 0) this.#issued.set(key, refusal, { ttl });
      return refusal;
    }
  }

  /** The grant's own parameters; the client's authentication is added by the endpoint. */
  #form(token: string): URLSearchParams {
    if (this.#config.profile === 'entra_obo') {
      // Entra ID's on-behalf-of request, as Microsoft documents it (v2.0 token endpoint): the scope names the upstream.
      return new URLSearchParams({ grant_type: JWT_BEARER, assertion: token, scope: this.#config.scope.join(' '), requested_token_use: 'on_behalf_of' });
    }
    return grantForm({ grant_type: TOKEN_EXCHANGE, subject_token: token, subject_token_type: ACCESS_TOKEN_TYPE, requested_token_type: this.#config.requested_token_type }, this.#config);
  }
}
