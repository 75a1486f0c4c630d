import { randomUUID } from 'node:crypto';
import { importJWK, SignJWT, type CryptoKey, type JWK } from 'jose';
import { addClientCredentials } from '../../auth/client-credentials.ts';
import { FetchFailure, fetchJson } from '../../auth/fetch-json.ts';
import { issuerMetadataSource } from '../../auth/issuer-metadata.ts';
import { isLoopbackHost } from '../../config/urls.ts';
import type { CredentialConfig } from '../../config/schema.ts';
import { openSecretSource, type SecretSource } from '../../config/secret-source.ts';
import { traced } from '../../tracing/child-spans.ts';

export type TokenClientConfig = Extract<CredentialConfig, { type: 'client_credentials' | 'token_exchange' }>;

const MAX_TOKEN_RESPONSE_BYTES = 64 * 1024;
const ASSERTION_LIFETIME_SECONDS = 60;
/** A token without `expires_in` is used for this long, then asked for again. */
const DEFAULT_LIFETIME_MS = 5 * 60_000;

/** A token the authorization server issued to the proxy. */
export interface IssuedToken {
  readonly accessToken: string;
  /** Milliseconds since the epoch. */
  readonly expiresAt: number;
}

/**
 * A grant's form with what the config says the token is for: `scope` (space-separated), `resource`
 * (RFC 8707) and `audience`, each only when configured.
 */
export function grantForm(grant: Record<string, string>, config: Pick<TokenClientConfig, 'scope' | 'resource' | 'audience'>): URLSearchParams {
  const form = new URLSearchParams(grant);
  if (config.scope.length > 0) form.set('scope', config.scope.join(' '));
  if (config.resource) form.set('resource', config.resource);
  if (config.audience) form.set('audience', config.audience);
  return form;
}

/**
 * Why no token came: the authorization server refused this request (`refused`, with its OAuth error
 * code: invalid_grant means the user may not have one), or could not be asked (`unavailable`).
 */
export class TokenRequestFailure extends Error {
  readonly kind: 'refused' | 'unavailable';
  readonly oauthError: string | undefined;

  constructor(kind: 'refused' | 'unavailable', message: string, oauthError?: string) {
    super(message);
    this.name = 'TokenRequestFailure';
    this.kind = kind;
    this.oauthError = oauthError;
  }
}

/**
 * The token endpoint the proxy asks for tokens of its own: found in the issuer's metadata or given, the
 * client authenticated by its secret (Basic or in the form) or by an RFC 7523 assertion signed with its
 * private JWK. Redirects are never followed, answers are bounded in time and size, and no token or
 * secret is ever part of an error message.
 */
export class TokenEndpoint {
  readonly #config: TokenClientConfig;
  readonly #secret: SecretSource | undefined;
  readonly #privateKey: SecretSource | undefined;
  readonly #endpoint: () => Promise<string>;
  #signingKey: { text: string; key: CryptoKey | Uint8Array; jwk: JWK } | undefined;

  /** `allowHttp`: insecure_allow_http, which lets a discovered endpoint be plain http off loopback too. */
  constructor(config: TokenClientConfig, allowHttp = false) {
    this.#config = config;
    this.#secret = config.client_secret ? openSecretSource(config.client_secret) : undefined;
    this.#privateKey = config.private_key ? openSecretSource(config.private_key, 'document') : undefined;
    const metadata = config.issuer ? issuerMetadataSource(config.issuer, config.timeout) : undefined;
    this.#endpoint = config.token_endpoint
      ? () => Promise.resolve(config.token_endpoint!)
      : async () => {
          const endpoint = (await metadata!()).token_endpoint;
          if (typeof endpoint !== 'string') throw new TokenRequestFailure('unavailable', `the metadata of ${config.issuer} names no token_endpoint`);
          // The secret, and for an exchange the user's token, go there: held to the rule the configured URLs meet.
          if (!secureEnough(endpoint, allowHttp)) throw new TokenRequestFailure('unavailable', `the metadata of ${config.issuer} names a token_endpoint that is not https`);
          return endpoint;
        };
  }

  /** Where tokens come from, for metric labels and log lines: the configured issuer or endpoint. */
  get label(): string {
    return this.#config.issuer ?? this.#config.token_endpoint!;
  }

  /** Secrets that cannot be read now, by config path. */
  missing(): Array<{ path: string; message: string }> {
    const problems: Array<{ path: string; message: string }> = [];
    for (const [path, source] of [['client_secret', this.#secret], ['private_key', this.#privateKey]] as const) {
      const value = source?.current();
      if (value && !value.ok) problems.push({ path: `upstream.credential.${path}`, message: value.problem });
    }
    return problems;
  }

  /** Posts `form` (the grant's own parameters) with the client's authentication; the issued token, or a TokenRequestFailure. */
  async request(form: URLSearchParams): Promise<IssuedToken> {
    const endpoint = await this.#endpoint().catch((error: unknown) => {
      throw error instanceof TokenRequestFailure ? error : new TokenRequestFailure('unavailable', `discovery failed: ${(error as Error).message}`);
    });
    const headers = await this.#authenticate(form, endpoint);
    let answer: unknown;
    try {
      // The grant type names the span; the form's tokens and assertions never reach it.
      answer = await traced('token request', () => fetchJson(endpoint, { timeoutMs: this.#config.timeout, maxBytes: MAX_TOKEN_RESPONSE_BYTES, form: { body: form.toString(), headers }, oauthErrors: true }), { 'mcp_warden.grant_type': form.get('grant_type') ?? undefined });
    } catch (error) {
      const failure = error as FetchFailure;
      if (failure.oauthError) throw new TokenRequestFailure('refused', `the token endpoint refused: ${failure.oauthError}`, failure.oauthError);
      throw new TokenRequestFailure('unavailable', failure.message);
    }
    const { access_token: accessToken, expires_in: expiresIn } = (answer ?? {}) as { access_token?: unknown; expires_in?: unknown };
    if (typeof accessToken !== 'string' || accessToken === '' || !/^[\x21-\x7e]+$/.test(accessToken)) throw new TokenRequestFailure('unavailable', 'the token endpoint answered without a usable access_token');
    const lifetime = typeof expiresIn === 'number' && Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn * 1000 : DEFAULT_LIFETIME_MS;
    return { accessToken, expiresAt: Date.now() + lifetime };
  }

  close(): void {
    this.#secret?.close();
    this.#privateKey?.close();
  }

  async #authenticate(form: URLSearchParams, endpoint: string): Promise<Record<string, string>> {
    const { client_id: clientId, auth_method: method } = this.#config;
    if (method !== 'private_key_jwt') {
      const secret = this.#secret!.current();
      if (!secret.ok) throw new TokenRequestFailure('unavailable', secret.problem);
      return addClientCredentials(form, method, clientId, secret.value);
    }
    const { key, jwk } = await this.#currentKey();
    const now = Math.floor(Date.now() / 1000);
    const assertion = await new SignJWT({})
      .setProtectedHeader({ alg: jwk.alg!, ...(jwk.kid ? { kid: jwk.kid } : {}) })
      .setIssuer(clientId)
      .setSubject(clientId)
      .setAudience(endpoint)
      .setJti(randomUUID())
      .setIssuedAt(now)
      .setExpirationTime(now + ASSERTION_LIFETIME_SECONDS)
      .sign(key);
    form.set('client_id', clientId);
    form.set('client_assertion_type', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
    form.set('client_assertion', assertion);
    return {};
  }

  /** The private JWK as imported; imported again when the mounted file changes. */
  async #currentKey(): Promise<{ key: CryptoKey | Uint8Array; jwk: JWK }> {
    const text = this.#privateKey!.current();
    if (!text.ok) throw new TokenRequestFailure('unavailable', text.problem);
    if (this.#signingKey?.text === text.value) return this.#signingKey;
    let jwk: JWK;
    try {
      jwk = JSON.parse(text.value) as JWK;
    } catch {
      throw new TokenRequestFailure('unavailable', 'upstream.credential.private_key is not a JSON Web Key');
    }
    const alg = jwk.alg ?? (jwk.kty === 'RSA' ? 'RS256' : jwk.kty === 'EC' ? 'ES256' : jwk.kty === 'OKP' ? 'EdDSA' : undefined);
    if (!alg || jwk.d === undefined) throw new TokenRequestFailure('unavailable', 'upstream.credential.private_key must be a private RSA, EC or OKP key');
    const key = await importJWK({ ...jwk, alg }, alg);
    this.#signingKey = { text: text.value, key, jwk: { ...jwk, alg } };
    return this.#signingKey;
  }
}

/** https, or http to a loopback host (or anywhere, with insecure_allow_http); no other scheme. */
function secureEnough(endpoint: string, allowHttp: boolean): boolean {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return false;
  }
  return url.protocol === 'https:' || (url.protocol === 'http:' && (allowHttp || isLoopbackHost(url.hostname)));
}
