import { discoverIssuerMetadata, type IssuerMetadata } from '../auth/discovery.ts';

/** Largest metadata document taken from the issuer. */
export const AS_METADATA_MAX_BYTES = 256 * 1024;
/** A document younger than this is served as it is; an older one is served while a fresh one is fetched. */
export const AS_METADATA_REFRESH_MS = 5 * 60_000;
/** A document not refreshed for this long is no longer served: 503 until the issuer answers again. */
export const AS_METADATA_MAX_STALE_MS = 60 * 60_000;
/** After a failed fetch, the issuer is not asked again for this long; clients are told to come back then. */
export const AS_METADATA_RETRY_MS = 10_000;

export interface AuthorizationServerMetadataOptions {
  /** Bound on one fetch (the issuer's RFC 8414 document, then its OpenID Connect one). */
  readonly timeoutMs: number;
  /** Default AS_METADATA_REFRESH_MS. */
  readonly refreshMs?: number;
  /** Default AS_METADATA_MAX_STALE_MS. */
  readonly maxStaleMs?: number;
  /** Default AS_METADATA_RETRY_MS. */
  readonly retryMs?: number;
  /** Told of each failed fetch, with the message of the failure. */
  readonly onFailure?: (message: string) => void;
}

/** The issuer's metadata and its serialization, or how long until the issuer is tried again. */
export type AuthorizationServerMetadataResult =
  | { readonly ok: true; readonly metadata: IssuerMetadata; readonly body: string }
  | { readonly ok: false; readonly retryAfterSeconds: number };

/**
 * One issuer's authorization server metadata, as the origin serves it to 2025-03-26 clients: fetched
 * when first asked for (RFC 8414 at the issuer, then OpenID Connect discovery), kept for `refreshMs`,
 * then refreshed in the background while the last good document is still served, up to `maxStaleMs`.
 * Beyond that, or before any fetch succeeded, it fails closed. Concurrent askers share one fetch, and a
 * failure holds further fetches off for `retryMs`, so clients cannot make the proxy hammer the issuer.
 */
export class AuthorizationServerMetadata {
  readonly issuer: string;
  readonly #options: Required<Omit<AuthorizationServerMetadataOptions, 'onFailure'>> & Pick<AuthorizationServerMetadataOptions, 'onFailure'>;
  #current: { metadata: IssuerMetadata; body: string; fetchedAt: number } | undefined;
  #pending: Promise<void> | undefined;
  #failedAt: number | undefined;

  constructor(issuer: string, options: AuthorizationServerMetadataOptions) {
    this.issuer = issuer;
    this.#options = {
      timeoutMs: options.timeoutMs,
      refreshMs: options.refreshMs ?? AS_METADATA_REFRESH_MS,
      maxStaleMs: options.maxStaleMs ?? AS_METADATA_MAX_STALE_MS,
      retryMs: options.retryMs ?? AS_METADATA_RETRY_MS,
      onFailure: options.onFailure,
    };
  }

  async get(): Promise<AuthorizationServerMetadataResult> {
    const now = Date.now();
    const current = this.#current;
    const age = current ? now - current.fetchedAt : Infinity;
    if (current && age < this.#options.refreshMs) return { ok: true, metadata: current.metadata, body: current.body };
    if (current && age < this.#options.maxStaleMs) {
      if (!this.#holdingOff(now)) void this.#fetch();
      return { ok: true, metadata: current.metadata, body: current.body };
    }
    if (this.#holdingOff(now)) return this.#unavailable(now);
    await this.#fetch();
    const fresh = this.#current;
    return fresh && Date.now() - fresh.fetchedAt < this.#options.maxStaleMs ? { ok: true, metadata: fresh.metadata, body: fresh.body } : this.#unavailable(Date.now());
  }

  #holdingOff(now: number): boolean {
    return this.#failedAt !== undefined && now - this.#failedAt < this.#options.retryMs;
  }

  #unavailable(now: number): AuthorizationServerMetadataResult {
    const waited = this.#failedAt === undefined ? 0 : now - this.#failedAt;
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((this.#options.retryMs - waited) / 1000)) };
  }

  /** One fetch at a time; never rejects: a failure is remembered, and the last good document kept. */
  #fetch(): Promise<void> {
    this.#pending ??= discoverIssuerMetadata(this.issuer, { timeoutMs: this.#options.timeoutMs, maxBytes: AS_METADATA_MAX_BYTES })
      .then(
        (metadata) => {
          // Served unchanged: the issuer's own members, `issuer` included, in its order.
          this.#current = { metadata, body: JSON.stringify(metadata), fetchedAt: Date.now() };
          this.#failedAt = undefined;
        },
        (error: unknown) => {
          this.#failedAt = Date.now();
          this.#options.onFailure?.((error as Error).message);
        },
      )
      .finally(() => {
        this.#pending = undefined;
      });
    return this.#pending;
  }
}
