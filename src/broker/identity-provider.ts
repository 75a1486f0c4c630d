import { jwtVerify, type JWTPayload } from 'jose';
import { issuerMetadataSource } from '../auth/issuer-metadata.ts';
import { addClientCredentials } from '../auth/client-credentials.ts';
import { fetchJson } from '../auth/fetch-json.ts';
import { KeySet } from '../auth/key-set.ts';
import { ASYMMETRIC_ALGORITHMS, type BrokerConfig } from '../config/schema.ts';
import type { SecretSource } from '../config/secret-source.ts';

const MAX_RESPONSE_BYTES = 64 * 1024;
const KEY_COOLDOWN_MS = 30_000;
const KEY_REFRESH_MS = 10 * 60_000;
const KEY_MAX_STALE_MS = 24 * 60 * 60_000;

export interface LoginRequest {
  readonly state: string;
  readonly nonce: string;
  readonly codeChallenge: string;
  readonly redirectUri: string;
}

/** The provider's own tokens for a user: what a per-user upstream credential injects. */
export interface ProviderTokens {
  readonly accessToken: string;
  readonly refreshToken: string | undefined;
  /** Milliseconds since the epoch; undefined when the provider did not say. */
  readonly expiresAt: number | undefined;
}

/** A user the identity provider vouched for, and the tokens it issued the broker for them. */
export interface IdentityProviderUser {
  readonly subject: string;
  readonly tokens: ProviderTokens | undefined;
}

/** Why the login at the identity provider did not produce a user; the message never holds a token. */
export class LoginFailure extends Error {
  override readonly name = 'LoginFailure';
}

/**
 * The broker as an ordinary OpenID Connect client of the identity provider: authorization code with PKCE,
 * `state` and `nonce` bound to the login, and the ID token verified with jose against the provider's keys
 * (issuer, audience, nonce, expiry). The provider's access token is returned for a per-user upstream
 * credential to keep; nothing else uses it.
 */
export class IdentityProvider {
  readonly #config: BrokerConfig['identity_provider'];
  readonly #secret: SecretSource;
  readonly #metadata: ReturnType<typeof issuerMetadataSource>;
  readonly #keys: KeySet;

  constructor(config: BrokerConfig['identity_provider'], secret: SecretSource) {
    this.#config = config;
    this.#secret = secret;
    this.#metadata = issuerMetadataSource(config.issuer, config.timeout);
    this.#keys = new KeySet({
      jwksUri: async () => this.#endpoint('jwks_uri'),
      timeoutMs: config.timeout,
      cooldownMs: KEY_COOLDOWN_MS,
      refreshMs: KEY_REFRESH_MS,
      maxStaleMs: KEY_MAX_STALE_MS,
    });
  }

  get issuer(): string {
    return this.#config.issuer;
  }

  /** Where the user's browser goes to log in. */
  async authorizationUrl(login: LoginRequest): Promise<string> {
    const url = new URL(await this.#endpoint('authorization_endpoint'));
    const params = {
      response_type: 'code',
      client_id: this.#config.client_id,
      redirect_uri: login.redirectUri,
      scope: this.#config.scopes.join(' '),
      state: login.state,
      nonce: login.nonce,
      code_challenge: login.codeChallenge,
      code_challenge_method: 'S256',
    };
    for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
    return url.href;
  }

  /**
   * RFC 9207: when the provider says it sends `iss` in its responses, the one it sent must be its own;
   * a response from another provider (a mix-up) is refused.
   */
  async checkResponseIssuer(iss: string | undefined): Promise<void> {
    const metadata = await this.#metadata();
    if (iss === undefined ? metadata.authorization_response_iss_parameter_supported === true : iss !== this.#config.issuer) {
      throw new LoginFailure('the login response does not come from the configured identity provider');
    }
  }

  /** Redeems the provider's code and verifies the ID token it returns. */
  async redeem(code: string, codeVerifier: string, redirectUri: string, nonce: string): Promise<IdentityProviderUser> {
    const response = await this.#tokenRequest(new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: codeVerifier }), 'the code');
    const idToken = (response as { id_token?: unknown } | null)?.id_token;
    if (typeof idToken !== 'string') throw new LoginFailure('the identity provider returned no ID token');
    const claims = await this.#verifyIdToken(idToken, nonce);
    const subject = claims[this.#config.subject_claim];
    if (typeof subject !== 'string' || subject === '' || subject.length > 256) {
      throw new LoginFailure(`the ID token's ${this.#config.subject_claim} claim is not a usable subject`);
    }
    return { subject, tokens: providerTokens(response) };
  }

  /** A new access token for a user, with the refresh token the provider gave; rotated refresh tokens come back too. */
  async refresh(refreshToken: string): Promise<ProviderTokens> {
    const response = await this.#tokenRequest(new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken }), 'the refresh token');
    const tokens = providerTokens(response);
    if (!tokens) throw new LoginFailure('the identity provider returned no access token');
    return { ...tokens, refreshToken: tokens.refreshToken ?? refreshToken };
  }

  /** A token endpoint call, authenticated as the broker's client there. */
  async #tokenRequest(form: URLSearchParams, what: string): Promise<unknown> {
    const secret = this.#secret.current();
    if (!secret.ok) throw new LoginFailure(`no client secret for the identity provider: ${secret.problem}`);
    const headers = addClientCredentials(form, this.#config.auth_method, this.#config.client_id, secret.value);
    try {
      return await fetchJson(await this.#endpoint('token_endpoint'), { timeoutMs: this.#config.timeout, maxBytes: MAX_RESPONSE_BYTES, form: { body: form.toString(), headers } });
    } catch (error) {
      throw new LoginFailure(`the identity provider's token endpoint refused ${what}: ${(error as Error).message}`);
    }
  }

  async #verifyIdToken(idToken: string, nonce: string): Promise<JWTPayload> {
    const metadata = await this.#metadata();
    const advertised = metadata.id_token_signing_alg_values_supported;
    const algorithms = (Array.isArray(advertised) ? advertised : ['RS256']).filter((alg): alg is string => (ASYMMETRIC_ALGORITHMS as readonly string[]).includes(alg));
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(idToken, this.#keys.getKey, {
        issuer: this.#config.issuer,
        audience: this.#config.client_id,
        algorithms,
        requiredClaims: ['exp', 'iat', 'sub', 'nonce'],
      }));
    } catch (error) {
      throw new LoginFailure(`the ID token is not valid: ${(error as Error).message}`);
    }
    if (payload.nonce !== nonce) throw new LoginFailure('the ID token was issued for another login (nonce)');
    // OIDC Core §3.1.3.7: with several audiences, azp names the client the token was issued to.
    if (Array.isArray(payload.aud) && payload.aud.length > 1 && payload.azp !== this.#config.client_id) throw new LoginFailure('the ID token was issued to another client (azp)');
    return payload;
  }

  async #endpoint(member: 'authorization_endpoint' | 'token_endpoint' | 'jwks_uri'): Promise<string> {
    const value = (await this.#metadata())[member];
    if (typeof value !== 'string') throw new LoginFailure(`${this.#config.issuer} publishes no ${member}`);
    return value;
  }
}

/** The access token, refresh token and expiry of a token response, when it has an access token. */
function providerTokens(response: unknown): ProviderTokens | undefined {
  const { access_token: accessToken, refresh_token: refreshToken, expires_in: expiresIn } = (response ?? {}) as Record<string, unknown>;
  if (typeof accessToken !== 'string' || accessToken === '') return undefined;
  return {
    accessToken,
    refreshToken: typeof refreshToken === 'string' && refreshToken !== '' ? refreshToken : undefined,
    expiresAt: typeof expiresIn === 'number' && expiresIn > 0 ? Date.now() + expiresIn * 1000 : undefined,
  };
}
