import { hkdfSync } from 'node:crypto';
import { compactDecrypt, CompactEncrypt } from 'jose';
import { LRUCache } from 'lru-cache';
import type { CredentialHeaders } from '../upstream/credential.ts';
import type { IdentityProvider, ProviderTokens } from './identity-provider.ts';
import { hashSecret } from './secrets.ts';
import type { BrokerStore } from './store.ts';

const MIN_KEY_LENGTH = 32;
const MAX_CACHED_USERS = 10_000;

/** The encryption key from its configured secret: at least 32 characters, stretched to 256 bits with HKDF. */
export function userTokenKey(secret: string): Uint8Array {
  if (secret.length < MIN_KEY_LENGTH) throw new Error(`broker.encryption_key must be at least ${MIN_KEY_LENGTH} characters (e.g. openssl rand -base64 32)`);
  return new Uint8Array(hkdfSync('sha256', secret, 'mcp-warden', 'user tokens (A256GCM)', 32));
}

interface StoredTokens {
  /** JWE (dir, A256GCM) of the JSON ProviderTokens: the store never holds a provider token in clear. */
  readonly jwe: string;
}

export interface UserTokenOptions {
  readonly store: BrokerStore;
  readonly identityProvider: IdentityProvider;
  readonly key: Uint8Array;
  /** Refresh this long before the provider's expiry, so no request carries a token about to lapse. */
  readonly refreshBeforeMs: number;
  /** How long a user's tokens are kept without a login (the broker's refresh token life). */
  readonly keepMs: number;
  readonly onRefresh: (result: 'ok' | 'failed') => void;
}

/**
 * The identity provider's tokens per user, for an upstream that needs the user's own token: kept
 * encrypted in the store, decrypted copies in a bounded cache, refreshed with the provider's refresh
 * token ahead of expiry, one refresh per user at a time. Never the MCP client's broker token.
 */
export class UserTokens {
  readonly #o: UserTokenOptions;
  readonly #cache = new LRUCache<string, ProviderTokens>({ max: MAX_CACHED_USERS });
  readonly #refreshing = new Map<string, Promise<CredentialHeaders>>();

  constructor(options: UserTokenOptions) {
    this.#o = options;
  }

  /** After a login: what the provider issued for this user replaces what was kept. */
  async save(subject: string, tokens: ProviderTokens): Promise<void> {
    const jwe = await new CompactEncrypt(new TextEncoder().encode(JSON.stringify(tokens))).setProtectedHeader({ alg: 'dir', enc: 'A256GCM' }).encrypt(this.#o.key);
    await this.#o.store.put('user_token', hashSecret(subject), { jwe } satisfies StoredTokens, Date.now() + this.#o.keepMs);
    this.#cache.set(subject, tokens);
  }

  /** The Authorization header for this user's upstream calls: at once from the cache, else after a lookup or refresh. */
  headersFor(subject: string): CredentialHeaders | Promise<CredentialHeaders> {
    const cached = this.#cache.get(subject);
    if (cached && this.#fresh(cached)) return bearer(cached);
    let pending = this.#refreshing.get(subject);
    if (!pending) {
      pending = this.#renew(subject).finally(() => this.#refreshing.delete(subject));
      this.#refreshing.set(subject, pending);
    }
    return pending;
  }

  #fresh(tokens: ProviderTokens): boolean {
    return tokens.expiresAt === undefined || tokens.expiresAt - this.#o.refreshBeforeMs > Date.now();
  }

  async #renew(subject: string): Promise<CredentialHeaders> {
    // Another replica may have refreshed already: the store is asked before the provider is.
    const stored = await this.#load(subject);
    if (!stored) return { ok: false, problem: 'no identity provider token is kept for this user; they must sign in again' };
    if (this.#fresh(stored)) {
      this.#cache.set(subject, stored);
      return bearer(stored);
    }
    if (!stored.refreshToken) return { ok: false, problem: "the user's identity provider token expired and there is no refresh token" };
    try {
      const renewed = await this.#o.identityProvider.refresh(stored.refreshToken);
      await this.save(subject, renewed);
      this.#o.onRefresh('ok');
      return bearer(renewed);
    } catch (error) {
      this.#o.onRefresh('failed');
      // A replica that refreshed at the same moment rotated the refresh token: its result is in the store.
      const again = await this.#load(subject);
      if (again && this.#fresh(again)) {
        this.#cache.set(subject, again);
        return bearer(again);
      }
      return { ok: false, problem: `refreshing the user's identity provider token failed: ${(error as Error).message}` };
    }
  }

  async #load(subject: string): Promise<ProviderTokens | undefined> {
    const stored = await this.#o.store.get<StoredTokens>('user_token', hashSecret(subject));
    if (!stored) return undefined;
    try {
      const { plaintext } = await compactDecrypt(stored.jwe, this.#o.key, { keyManagementAlgorithms: ['dir'], contentEncryptionAlgorithms: ['A256GCM'] });
      return JSON.parse(new TextDecoder().decode(plaintext)) as ProviderTokens;
    } catch {
      // Encrypted under another key (rotated), or damaged: as good as absent.
      return undefined;
    }
  }
}

function bearer(tokens: ProviderTokens): CredentialHeaders {
  return { ok: true, headers: { authorization: `Bearer ${tokens.accessToken}` } };
}
