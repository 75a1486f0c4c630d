import type { Principal } from '../auth/principal.ts';
import type { BrokerStore } from './store.ts';

/**
 * Broker access tokens that must be refused before their `exp`: single tokens by `jti` (RFC 7009), and
 * whole grants by `grant_id` (a replayed code, a reused refresh token, a revoked refresh token). The
 * resource-server path asks on every request, so the set lives in memory; the store keeps it across
 * restarts. Each entry lasts only as long as what it revokes could still be used.
 */
export class Revocations {
  readonly #store: BrokerStore;
  readonly #issuer: string;
  readonly #until = new Map<string, number>();
  /** How long a revoked grant stays refused: until its newest token (a refresh token, usually) has expired. */
  readonly #grantLifeMs: number;
  readonly #now: () => number;

  constructor(store: BrokerStore, issuer: string, grantLifeMs: number, now: () => number = Date.now) {
    this.#store = store;
    this.#issuer = issuer;
    this.#grantLifeMs = grantLifeMs;
    this.#now = now;
  }

  /** Reads the store's revocations into memory: at start, and periodically when replicas share the store. */
  async load(): Promise<void> {
    for (const record of await this.#store.list('revoked')) this.#until.set(record.key, record.expiresAt ?? Number.POSITIVE_INFINITY);
  }

  revokeToken(jti: string, expiresAtMs: number): Promise<void> {
    return this.#add(`jti:${jti}`, expiresAtMs);
  }

  revokeGrant(grantId: string): Promise<void> {
    return this.#add(`grant:${grantId}`, this.#now() + this.#grantLifeMs);
  }

  /** Asks the store too: another replica may have revoked the grant since this one last read. */
  async isGrantRevoked(grantId: string): Promise<boolean> {
    return this.#live(`grant:${grantId}`) || (await this.#store.get('revoked', `grant:${grantId}`)) !== undefined;
  }

  /** For the verifier: a broker token whose jti or grant was revoked. Tokens of other issuers pass. */
  readonly isRevoked = (principal: Principal): boolean => {
    if (principal.issuer !== this.#issuer || this.#until.size === 0) return false;
    const { jti, grant_id: grantId } = principal.claims as { jti?: unknown; grant_id?: unknown };
    return (typeof jti === 'string' && this.#live(`jti:${jti}`)) || (typeof grantId === 'string' && this.#live(`grant:${grantId}`));
  };

  /** Forgets entries past their time (what they revoke has expired anyway). */
  prune(): void {
    const now = this.#now();
    for (const [key, until] of this.#until) if (until <= now) this.#until.delete(key);
  }

  #live(key: string): boolean {
    const until = this.#until.get(key);
    return until !== undefined && until > this.#now();
  }

  async #add(key: string, untilMs: number): Promise<void> {
    if ((this.#until.get(key) ?? 0) >= untilMs) return;
    this.#until.set(key, untilMs);
    await this.#store.put('revoked', key, {}, untilMs);
  }
}
