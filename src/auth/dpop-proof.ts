import { createHash, randomBytes } from 'node:crypto';
import { calculateJwkThumbprint, decodeProtectedHeader, errors, importJWK, jwtVerify, type CryptoKey, type JWK, type JWTPayload, type KeyObject } from 'jose';
import { LRUCache } from 'lru-cache';
import { AuthFailure, type AuthFailureReason } from './failure.ts';

/** JWK members that only a private (or symmetric) key has: a proof carrying one gave its key away. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
/** A nonce is accepted while it is the current one or the one before: each lives at most twice this. */
const NONCE_ROTATION_MS = 60_000;
/** Client keys kept imported, with their thumbprints: a client signs every proof with the same key. */
const KEY_CACHE_ENTRIES = 10_000;

interface ProofKey {
  readonly key: CryptoKey | KeyObject | Uint8Array;
  readonly jkt: string;
}

export interface DpopProofOptions {
  /** Asymmetric algorithms a proof may be signed with. */
  readonly algorithms: readonly string[];
  readonly maxAgeMs: number;
  readonly clockToleranceMs: number;
  /** Proof ids remembered against replay, at most. */
  readonly maxReplayEntries: number;
  /** Proofs must carry a nonce this verifier handed out. */
  readonly nonce: boolean;
  readonly now?: () => number;
}

/** What the proof must be about: this request, and (at a resource server) this access token and its key. */
export interface DpopProofTarget {
  readonly method: string;
  /** The request's public URL without query and fragment (RFC 9449 §4.3: htu). */
  readonly url: string;
  /** At a resource server: the token whose hash the proof must name (`ath`). */
  readonly accessToken?: string;
  /** At a resource server: the token's `cnf.jkt`, the thumbprint the proof's key must have. */
  readonly jkt?: string;
  /** Replays are counted per issuer and key: one issuer's key ids never collide with another's. */
  readonly replayScope: string;
}

/** A proof that held: the thumbprint of its key (RFC 7638), for a token endpoint to bind tokens to. */
export interface VerifiedProof {
  readonly jkt: string;
}

const refuse = (reason: AuthFailureReason, detail: string) => new AuthFailure(reason, detail);

/**
 * Verifies DPoP proofs (RFC 9449 §4.3): a `dpop+jwt` signed with an allowed asymmetric algorithm by the
 * public key in its header, about this request (`htm`, `htu`), fresh (`iat`), never seen before (`jti`,
 * per issuer and key, remembered for as long as the proof would be fresh), and, at a resource server,
 * about this token (`ath`) with the token's key (`cnf.jkt`). Every refusal names its own reason.
 */
export class DpopProofVerifier {
  readonly #options: DpopProofOptions;
  readonly #seen: LRUCache<string, true>;
  /**
   * Importing a JWK and hashing its thumbprint cost more than the signature check itself (about 200 µs of
   * 240 in the bench): both are kept per key, under the key's exact JSON and algorithm.
   */
  readonly #keys = new LRUCache<string, Promise<ProofKey>>({ max: KEY_CACHE_ENTRIES });
  readonly #now: () => number;
  #nonces: { current: string; previous: string; rotatedAt: number };

  constructor(options: DpopProofOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    // A proof older than max_age (plus tolerance either way) is refused anyway, so its id need not be kept longer.
    this.#seen = new LRUCache({ max: options.maxReplayEntries, ttl: options.maxAgeMs + 2 * options.clockToleranceMs, ttlAutopurge: false });
    this.#nonces = { current: newNonce(), previous: newNonce(), rotatedAt: this.#now() };
  }

  get algorithms(): readonly string[] {
    return this.#options.algorithms;
  }

  /** The nonce a client is told to put in its next proof (`DPoP-Nonce`); rotates, the previous one still accepted. */
  currentNonce(): string {
    if (this.#now() - this.#nonces.rotatedAt >= NONCE_ROTATION_MS) {
      this.#nonces = { current: newNonce(), previous: this.#nonces.current, rotatedAt: this.#now() };
    }
    return this.#nonces.current;
  }

  async verify(proof: string, target: DpopProofTarget): Promise<VerifiedProof> {
    const { jwk, alg } = this.#checkHeader(proof);
    let payload: JWTPayload;
    let jkt: string;
    try {
      const key = await this.#keyOf(jwk, alg);
      jkt = key.jkt;
      ({ payload } = await jwtVerify(proof, key.key, { typ: 'dpop+jwt', algorithms: [alg] }));
    } catch (error) {
      throw refuse('dpop_invalid_proof', error instanceof errors.JOSEError ? error.code : 'the proof does not verify');
    }
    this.#checkClaims(payload, target);
    if (target.jkt !== undefined && jkt !== target.jkt) throw refuse('dpop_key_mismatch', 'the proof is signed by another key than the one the token is bound to');
    if (this.#options.nonce) this.#checkNonce(payload);
    // Remembered last: a proof refused for anything else may be corrected and sent again.
    const key = `${target.replayScope} ${jkt} ${payload.jti as string}`;
    if (this.#seen.has(key)) throw refuse('dpop_replayed', 'this proof was used before');
    this.#seen.set(key, true);
    return { jkt };
  }

  /** The proof's key, imported for its algorithm, and its RFC 7638 thumbprint; a key that fails to import is not kept. */
  #keyOf(jwk: JWK, alg: string): Promise<ProofKey> {
    const id = `${alg} ${JSON.stringify(jwk)}`;
    let entry = this.#keys.get(id);
    if (!entry) {
      entry = Promise.all([importJWK(jwk, alg), calculateJwkThumbprint(jwk, 'sha256')]).then(([key, jkt]) => ({ key, jkt }));
      entry.catch(() => this.#keys.delete(id));
      this.#keys.set(id, entry);
    }
    return entry;
  }

  #checkHeader(proof: string): { jwk: JWK; alg: string } {
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(proof);
    } catch {
      throw refuse('dpop_invalid_proof', 'the proof is not a JWS');
    }
    if (header.typ !== 'dpop+jwt') throw refuse('dpop_invalid_proof', 'typ is not dpop+jwt');
    if (typeof header.alg !== 'string' || !this.#options.algorithms.includes(header.alg)) throw refuse('dpop_algorithm', 'the proof algorithm is not accepted');
    const jwk = header.jwk;
    if (typeof jwk !== 'object' || jwk === null) throw refuse('dpop_invalid_proof', 'the proof carries no jwk');
    if (PRIVATE_MEMBERS.some((member) => Object.hasOwn(jwk, member))) throw refuse('dpop_private_key', 'the proof jwk holds private key material');
    return { jwk, alg: header.alg };
  }

  #checkClaims(payload: JWTPayload, target: DpopProofTarget): void {
    if (typeof payload.jti !== 'string' || payload.jti.length === 0 || payload.jti.length > 256) throw refuse('dpop_invalid_proof', 'jti is missing');
    if (payload.htm !== target.method) throw refuse('dpop_method_mismatch', 'htm is not this request method');
    if (typeof payload.htu !== 'string' || !sameUrl(payload.htu, target.url)) throw refuse('dpop_url_mismatch', 'htu is not this request URL');
    const now = this.#now();
    const { maxAgeMs, clockToleranceMs } = this.#options;
    if (typeof payload.iat !== 'number') throw refuse('dpop_invalid_proof', 'iat is missing');
    if (payload.iat * 1000 > now + clockToleranceMs || payload.iat * 1000 < now - maxAgeMs - clockToleranceMs) throw refuse('dpop_stale', 'iat is outside the accepted window');
    if (target.accessToken !== undefined && payload.ath !== createHash('sha256').update(target.accessToken).digest('base64url')) {
      throw refuse('dpop_token_hash_mismatch', 'ath is not the hash of this access token');
    }
  }

  #checkNonce(payload: JWTPayload): void {
    const nonce = payload.nonce;
    this.currentNonce();
    if (nonce !== this.#nonces.current && nonce !== this.#nonces.previous) throw refuse('dpop_nonce_required', 'the proof needs the server nonce');
  }
}

/**
 * htu compares as a URL without query and fragment (RFC 9449 §4.3), scheme and host case-insensitively
 * (RFC 3986 §6.2.2.1): the proof's own query or fragment is not stripped, so a proof made for another
 * query is refused. The expected URL is always built from `resource.url`, never from the request's Host.
 */
function sameUrl(htu: string, expected: string): boolean {
  let url: URL;
  try {
    url = new URL(htu);
  } catch {
    return false;
  }
  if (url.search !== '' || url.hash !== '' || htu.includes('?') || htu.includes('#')) return false;
  return url.href === new URL(expected).href;
}

function newNonce(): string {
  return randomBytes(24).toString('base64url');
}
