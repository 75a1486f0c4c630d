import { decodeJwt, type JWTVerifyGetKey } from 'jose';
import type { AssertionChecks, AssertionProfile } from './assertions.ts';
import type { BrokerClient } from './client-metadata.ts';
import { refusal, type FormParams } from './http.ts';

/** RFC 7523 §2.2: the only client assertion type. */
export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** A client that authenticates with signed assertions, and the keys that sign them. */
export interface KeyedClient {
  readonly client: BrokerClient;
  readonly keys: JWTVerifyGetKey;
}

export interface ClientAssertionSettings {
  readonly checks: AssertionChecks;
  /** The broker's issuer and its token endpoint: what `aud` may name (RFC 7523 §3). */
  readonly audiences: readonly string[];
  readonly algorithms: readonly string[];
}

const refuse = (reason: string, description: string) => refusal('invalid_client', reason, description);

/**
 * private_key_jwt (RFC 7523 §2.2 and §3): the client is who the assertion's `iss` and `sub` both name,
 * once its signature verifies with that client's registered keys; each assertion is used once.
 */
export async function authenticateByAssertion(form: FormParams, find: (clientId: string) => KeyedClient | undefined, settings: ClientAssertionSettings): Promise<BrokerClient> {
  if (form.get('client_assertion_type') !== CLIENT_ASSERTION_TYPE) throw refuse('assertion_type', `client_assertion_type must be ${CLIENT_ASSERTION_TYPE}`);
  const assertion = form.get('client_assertion');
  if (!assertion) throw refuse('malformed', 'client_assertion is required');
  let claimed: unknown;
  try {
    claimed = decodeJwt(assertion).iss;
  } catch {
    throw refuse('malformed', 'the client assertion is not a JWT');
  }
  if (typeof claimed !== 'string' || claimed.length === 0 || claimed.length > 256) throw refuse('malformed', 'the client assertion names no client in iss');
  const given = form.get('client_id');
  if (given !== undefined && given !== claimed) throw refuse('client_id_mismatch', 'client_id differs from the client the assertion names');
  const keyed = find(claimed);
  if (!keyed) throw refuse('unknown_client', 'unknown client, or one that does not authenticate with private_key_jwt');
  const profile: AssertionProfile = {
    code: 'invalid_client',
    what: 'the client assertion',
    issuer: claimed,
    subject: claimed,
    audiences: settings.audiences,
    algorithms: settings.algorithms,
    typ: (typ) => typ === undefined || typ === 'jwt' || typ === 'client-authentication+jwt',
    requiredClaims: ['exp', 'jti'],
    key: keyed.keys,
  };
  const payload = await settings.checks.verify(assertion, profile);
  await settings.checks.spend(payload, profile, 'client_assertion');
  return keyed.client;
}
