import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** 256 bits from the CSPRNG, base64url: codes, refresh tokens, transaction ids, cookie values, client secrets. */
export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** How a secret is kept in the store: its SHA-256 (the values are random, so no salt is needed). */
export function hashSecret(value: string): string {
  return createHash('sha256').update(value).digest('base64url');
}

/** Compares a presented secret with a stored hash in constant time (hashes have one length whatever the input). */
export function matchesHash(presented: string, expectedHash: string): boolean {
  const actual = Buffer.from(hashSecret(presented));
  const expected = Buffer.from(expectedHash);
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/** RFC 7636 §4.2 S256. */
export function s256(verifier: string): string {
  return createHash('sha256').update(verifier, 'ascii').digest('base64url');
}

/** RFC 7636 §4.1: 43 to 128 characters of the unreserved set. */
export const PKCE_VALUE = /^[A-Za-z0-9\-._~]{43,128}$/;
