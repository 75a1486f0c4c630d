import { createPrivateKey, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { BrokerStore } from './store.ts';

/** The key the broker signs its access tokens with, and its public half as published at jwks_uri. */
export interface SigningKey {
  readonly alg: 'RS256' | 'ES256' | 'EdDSA';
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly publicJwk: JWK;
}

const GENERATED_ALG = 'ES256';

/**
 * The configured key (a private JWK from a file or Secret), else the one kept in the store, else a new
 * one, stored before use. Several processes starting together on one store agree on the first one written.
 */
export async function loadSigningKey(store: BrokerStore, configured: string | undefined): Promise<SigningKey> {
  if (configured !== undefined) return fromJwk(parseJwk(configured));
  let jwk = await store.get<JWK>('signing_key', 'current');
  if (!jwk) {
    const { privateKey } = await generateKeyPair(GENERATED_ALG, { extractable: true });
    await store.put('signing_key', 'current', { ...(await exportJWK(privateKey)), alg: GENERATED_ALG }, undefined, { ifAbsent: true });
    jwk = (await store.get<JWK>('signing_key', 'current'))!;
  }
  return fromJwk(jwk);
}

function parseJwk(text: string): JWK {
  let jwk: unknown;
  try {
    jwk = JSON.parse(text);
  } catch {
    throw new Error('broker.signing_key is not a JSON Web Key');
  }
  if (typeof jwk !== 'object' || jwk === null || typeof (jwk as JWK).d !== 'string') throw new Error('broker.signing_key must be a private JWK (with "d")');
  return jwk as JWK;
}

async function fromJwk(jwk: JWK): Promise<SigningKey> {
  const alg = algorithmFor(jwk);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: jwk as JsonWebKey, format: 'jwk' });
  } catch (error) {
    throw new Error(`broker.signing_key is not a usable private key: ${(error as Error).message}`);
  }
  const publicKey = createPublicKey(privateKey);
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return { alg, kid, privateKey, publicKey, publicJwk: { ...publicJwk, kid, alg, use: 'sig' } };
}

function algorithmFor(jwk: JWK): SigningKey['alg'] {
  if (jwk.kty === 'RSA' && (jwk.alg === undefined || jwk.alg === 'RS256')) return 'RS256';
  if (jwk.kty === 'EC' && jwk.crv === 'P-256' && (jwk.alg === undefined || jwk.alg === 'ES256')) return 'ES256';
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA';
  throw new Error(`broker.signing_key: expected an RSA (RS256), P-256 (ES256) or Ed25519 key, got ${String(jwk.kty)}/${String(jwk.crv ?? jwk.alg)}`);
}
