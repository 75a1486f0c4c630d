// The DPoP client of target (l) (RFC 9449): one P-256 key, and a proof per request, as a real client sends
// them. autocannon sends fixed requests, so each request takes its proof in `setupRequest`. Signing in
// the load generator during a window would make it, not the proxy, the limit: the proofs of a window are
// signed before it (its CPU readings start after), all with `iat` = the window's start and each with its
// own `jti`. A proof is handed out once and dropped; should a window outrun its pool, the missing proofs
// are signed on the spot (counted: `signedInWindow`), never reused. mcp-warden remembers every `jti`,
// so a reused proof would be refused, and a window with more than 1 % refused requests stops the run.
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, type JWK } from 'jose';

/** Requests per second assumed for the first window (the warm-up), before this target has been measured at all. */
const DEFAULT_RPS = 12_000;
/** Proofs signed per window: its expected requests times this, plus SPARE_PROOFS. */
const POOL_HEADROOM = 1.3;
const SPARE_PROOFS = 1_000;
/** Bounds on one pool: count and signing time (a P-256 signature takes some 20 µs here). */
const MAX_POOL = 400_000;
const MAX_SIGNING_MS = 10_000;

export interface DpopKey {
  readonly privateKey: KeyObject;
  readonly publicJwk: JWK;
  /** RFC 7638 SHA-256 thumbprint: the token's `cnf.jkt`. */
  readonly jkt: string;
}

export async function createDpopKey(): Promise<DpopKey> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const { kty, crv, x, y } = publicKey.export({ format: 'jwk' });
  const publicJwk = { kty, crv, x, y } as JWK;
  return { privateKey, publicJwk, jkt: await calculateJwkThumbprint(publicJwk, 'sha256') };
}

/** What a window used of its pool. */
export interface ProofUse {
  readonly presigned: number;
  readonly signMs: number;
  readonly handedOut: number;
  /** Proofs the pool lacked, signed by the load generator during the window (its CPU); should be 0. */
  readonly signedInWindow: number;
}

/** Proofs for one token at one URL (`POST`), each used once. */
export class ProofPool {
  readonly #key: DpopKey;
  readonly #header: string;
  readonly #htu: string;
  readonly #ath: string;
  /** jti = this prefix and a counter: unique within the run, and across runs against the same process. */
  readonly #jtiPrefix = randomBytes(9).toString('base64url');
  #counter = 0;
  #pool: string[] = [];
  #next = 0;
  #use: ProofUse = { presigned: 0, signMs: 0, handedOut: 0, signedInWindow: 0 };
  readonly #observedRps = new Map<number, number>();

  constructor(key: DpopKey, htu: string, accessToken: string) {
    this.#key = key;
    this.#header = b64(JSON.stringify({ typ: 'dpop+jwt', alg: 'ES256', jwk: key.publicJwk }));
    this.#htu = htu;
    this.#ath = createHash('sha256').update(accessToken).digest('base64url');
  }

  /** Drops what is left of the last pool and signs a new one, sized for `seconds` at `connections`. */
  prepare(connections: number, seconds: number): void {
    // Fewer connections never serve more: before the first 1-connection window, the warm-up's 50-connection rate bounds it.
    const expected = this.#observedRps.get(connections) ?? (Math.max(0, ...this.#observedRps.values()) || DEFAULT_RPS);
    const count = Math.min(MAX_POOL, Math.ceil(expected * seconds * POOL_HEADROOM) + SPARE_PROOFS);
    const started = performance.now();
    const iat = Math.floor(Date.now() / 1000);
    const pool: string[] = [];
    for (let i = 0; i < count && performance.now() - started < MAX_SIGNING_MS; i += 1) pool.push(this.#sign(iat));
    this.#pool = pool;
    this.#next = 0;
    this.#use = { presigned: pool.length, signMs: performance.now() - started, handedOut: 0, signedInWindow: 0 };
  }

  /** The next unused proof; signed now if the pool ran dry. */
  take(): string {
    const use = this.#use as { handedOut: number; signedInWindow: number };
    use.handedOut += 1;
    if (this.#next < this.#pool.length) {
      const proof = this.#pool[this.#next]!;
      this.#pool[this.#next] = ''; // handed out once; the slot no longer holds it
      this.#next += 1;
      return proof;
    }
    use.signedInWindow += 1;
    return this.#sign(Math.floor(Date.now() / 1000));
  }

  /** After a window: its rate sizes the next pool at the same connection count; returns what the window used. */
  finish(connections: number, requestsPerSecond: number): ProofUse {
    this.#observedRps.set(connections, Math.max(requestsPerSecond, this.#observedRps.get(connections) ?? 0));
    this.#pool = [];
    this.#next = 0;
    return { ...this.#use };
  }

  #sign(iat: number): string {
    this.#counter += 1;
    const payload = b64(JSON.stringify({ jti: `${this.#jtiPrefix}.${this.#counter.toString(36)}`, htm: 'POST', htu: this.#htu, iat, ath: this.#ath }));
    const input = `${this.#header}.${payload}`;
    const signature = sign('sha256', Buffer.from(input), { key: this.#key.privateKey, dsaEncoding: 'ieee-p1363' });
    return `${input}.${signature.toString('base64url')}`;
  }
}

function b64(text: string): string {
  return Buffer.from(text).toString('base64url');
}

/**
 * Before (l) is measured: a fresh proof gets 200 and the upstream's exact body (checked by the caller's
 * usual check); here, that the binding is real: the same token as Bearer, and the same proof twice, are
 * refused with 401. Otherwise (l) would measure a proxy that does not check what it is meant to.
 */
export async function assertBound(url: string, headers: Readonly<Record<string, string>>, body: string, token: string, pool: ProofPool): Promise<void> {
  const post = async (extra: Record<string, string>) => {
    const response = await fetch(url, { method: 'POST', headers: { ...headers, ...extra }, body, signal: AbortSignal.timeout(5_000) });
    return { status: response.status, text: await response.text() };
  };
  const asBearer = await post({ authorization: `Bearer ${token}` });
  if (asBearer.status !== 401) throw new Error(`(l) the DPoP-bound token sent as Bearer answered ${asBearer.status}, not 401: the binding is not checked, refusing to benchmark it`);
  const proof = pool.take();
  const first = await post({ dpop: proof });
  const replay = await post({ dpop: proof });
  if (first.status !== 200 || replay.status !== 401) {
    throw new Error(`(l) a proof answered ${first.status} and, sent again, ${replay.status} (${replay.text.slice(0, 200)}): expected 200 then 401, refusing to benchmark it`);
  }
}
