import { LRUCache } from 'lru-cache';
import type { Principal } from '../auth/principal.ts';

export type SessionCheck = 'bound' | 'foreign' | 'unknown';

/**
 * Which principal each upstream session belongs to. The unmodified upstream cannot bind its sessions to
 * users, so the proxy does (MCP security best practices, "Session Hijacking"): a session id is only ever
 * usable with the token of the principal that opened it.
 */
export class SessionBinding {
  readonly #owners: LRUCache<string, string>;

  /** `onDrop`: a binding left the table because it was full or idle (not by `forget`); what it held must go too. */
  constructor(options: { maxEntries: number; idleTtlMs: number; onDrop?: (sessionId: string) => void }) {
    const { onDrop } = options;
    this.#owners = new LRUCache({
      max: options.maxEntries,
      ttl: options.idleTtlMs,
      updateAgeOnGet: true,
      dispose: onDrop && ((_owner, sessionId, reason) => (reason === 'evict' || reason === 'expire') && onDrop(sessionId)),
    });
  }

  check(sessionId: string, principal: Principal): SessionCheck {
    const owner = this.#owners.get(sessionId);
    if (owner === undefined) return 'unknown';
    return owner === ownerKey(principal) ? 'bound' : 'foreign';
  }

  bind(sessionId: string, principal: Principal): void {
    this.#owners.set(sessionId, ownerKey(principal));
  }

  forget(sessionId: string): void {
    this.#owners.delete(sessionId);
  }
}

/** Who owns a session: the issuer, subject and client of the token that opened it. */
export function ownerKey(principal: Principal): string {
  return JSON.stringify([principal.issuer, principal.subject ?? null, principal.clientId ?? null]);
}
