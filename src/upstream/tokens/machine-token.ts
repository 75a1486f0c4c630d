import type { Logger } from '../../observability/logger.ts';
import type { UpstreamTokenMetrics } from '../../observability/upstream-token-metrics.ts';
import type { CredentialHeaders, UpstreamCredential } from '../credential.ts';
import { tokenHeader } from './bearer-header.ts';
import { grantForm, TokenEndpoint, TokenRequestFailure, type IssuedToken, type TokenClientConfig } from './token-endpoint.ts';

const RETRY_MIN_MS = 1_000;
const RETRY_MAX_MS = 30_000;
/** Renewal starts at least this long after a token came, however short its life. */
const MIN_RENEW_AFTER_MS = 1_000;

type ClientCredentialsConfig = Extract<TokenClientConfig, { type: 'client_credentials' }>;

/**
 * One token for the proxy itself (RFC 6749 client credentials): fetched at start (readiness waits for
 * it), renewed `refresh_before` its expiry in the background, with retries that keep the last good
 * token until it expires. Concurrent needs share one request. Without a live token the answer is
 * "unavailable" (503), never a request without a credential.
 */
export class MachineToken implements UpstreamCredential {
  readonly headerNames: readonly string[];
  readonly #config: ClientCredentialsConfig;
  readonly #endpoint: TokenEndpoint;
  readonly #header: ReturnType<typeof tokenHeader>;
  readonly #metrics: UpstreamTokenMetrics;
  readonly #logger: Logger;
  #current: IssuedToken | undefined;
  #pending: Promise<IssuedToken> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(config: ClientCredentialsConfig, metrics: UpstreamTokenMetrics, logger: Logger, allowHttp = false) {
    this.#config = config;
    this.#endpoint = new TokenEndpoint(config, allowHttp);
    this.#header = tokenHeader(config.header);
    this.headerNames = config.env ? [] : [this.#header.name];
    this.#metrics = metrics;
    this.#logger = logger;
  }

  get ready(): boolean {
    return this.#live() !== undefined;
  }

  missingSecrets(): Array<{ path: string; message: string }> {
    return this.#endpoint.missing();
  }

  /** Fetches the first token and keeps it renewed; failures are retried with backoff. */
  start(): void {
    void this.#renew(RETRY_MIN_MS);
  }

  /** The live token, for a stdio child's environment at spawn. */
  current(): string | undefined {
    return this.#live()?.accessToken;
  }

  headers(): CredentialHeaders | Promise<CredentialHeaders> {
    const live = this.#live();
    if (live) return { ok: true, headers: { [this.#header.name]: this.#header.value(live.accessToken) } };
    return this.#fetch().then(
      (token) => ({ ok: true, headers: { [this.#header.name]: this.#header.value(token.accessToken) } }),
      (error: Error) => ({ ok: false, problem: `no upstream token: ${error.message}` }),
    );
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#endpoint.close();
  }

  #live(): IssuedToken | undefined {
    const current = this.#current;
    return current && Date.now() < current.expiresAt ? current : undefined;
  }

  /** One token request at a time; everyone who needs a token meanwhile waits for that one. */
  #fetch(): Promise<IssuedToken> {
    this.#pending ??= this.#request().finally(() => (this.#pending = undefined));
    return this.#pending;
  }

  async #request(): Promise<IssuedToken> {
    try {
      const token = await this.#endpoint.request(grantForm({ grant_type: 'client_credentials' }, this.#config));
      this.#metrics.request(this.#endpoint.label, 'client_credentials', 'ok');
      this.#current = token;
      return token;
    } catch (error) {
      const failure = error instanceof TokenRequestFailure ? error : new TokenRequestFailure('unavailable', (error as Error).message);
      this.#metrics.request(this.#endpoint.label, 'client_credentials', failure.kind);
      throw failure;
    }
  }

  async #renew(retryMs: number): Promise<void> {
    if (this.#closed) return;
    try {
      const token = await this.#fetch();
      const lifetime = token.expiresAt - Date.now();
      // A token shorter-lived than refresh_before is renewed at half its life instead.
      const renewIn = Math.max(MIN_RENEW_AFTER_MS, lifetime > 2 * this.#config.refresh_before ? lifetime - this.#config.refresh_before : lifetime / 2);
      this.#schedule(renewIn, RETRY_MIN_MS);
    } catch (error) {
      const live = this.#live();
      this.#logger.warn({ issuer: this.#endpoint.label, err: (error as Error).message, retry_ms: retryMs, token_valid_ms: live ? live.expiresAt - Date.now() : 0 }, live ? 'upstream token renewal failed, using the current one until it expires' : 'no upstream token');
      this.#schedule(retryMs, Math.min(retryMs * 2, RETRY_MAX_MS));
    }
  }

  #schedule(delayMs: number, nextRetryMs: number): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => void this.#renew(nextRetryMs), delayMs);
    this.#timer.unref();
  }
}
