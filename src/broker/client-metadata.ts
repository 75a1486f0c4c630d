import { isRedirectUriAllowed } from '../config/urls.ts';
import { OAuthError } from './http.ts';
import { newSecret } from './secrets.ts';

export type ClientAuthMethod = 'none' | 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';
/** What dynamic registration offers; private_key_jwt keys are only ever configured. */
const AUTH_METHODS: readonly ClientAuthMethod[] = ['none', 'client_secret_basic', 'client_secret_post'];
const GRANT_TYPES = ['authorization_code', 'refresh_token'];

/** A client the broker knows: pre-registered in config, or registered dynamically and kept in the store. */
export interface BrokerClient {
  readonly client_id: string;
  readonly client_name: string | undefined;
  readonly redirect_uris: readonly string[];
  readonly grant_types: readonly string[];
  readonly token_endpoint_auth_method: ClientAuthMethod;
  /** SHA-256 of a dynamically issued secret; pre-registered secrets stay in their Secret. */
  readonly client_secret_hash?: string;
  readonly client_id_issued_at: number;
  readonly scope?: string;
}

const LIMITS = { redirectUris: 10, uriLength: 2000, nameLength: 200, scopeLength: 1000 };

/** RFC 7591 §2 metadata, checked member by member; what the broker does not use is not kept. */
export function validateMetadata(metadata: unknown): BrokerClient {
  const bad = (description: string, code = 'invalid_client_metadata') => new OAuthError(code, description);
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) throw bad('the metadata must be a JSON object');
  const m = metadata as Record<string, unknown>;
  const redirectUris = m.redirect_uris;
  if (!Array.isArray(redirectUris) || redirectUris.length === 0) throw bad('redirect_uris is required', 'invalid_redirect_uri');
  if (redirectUris.length > LIMITS.redirectUris) throw bad(`at most ${LIMITS.redirectUris} redirect_uris`, 'invalid_redirect_uri');
  for (const uri of redirectUris) {
    if (typeof uri !== 'string' || uri.length > LIMITS.uriLength || !isRedirectUriAllowed(uri)) {
      throw bad('each redirect URI must be https, or http on a loopback host, without a fragment', 'invalid_redirect_uri');
    }
  }
  const method = m.token_endpoint_auth_method ?? 'client_secret_basic';
  if (!AUTH_METHODS.includes(method as ClientAuthMethod)) throw bad(`token_endpoint_auth_method must be one of ${AUTH_METHODS.join(', ')}`);
  const grantTypes = m.grant_types ?? ['authorization_code'];
  if (!Array.isArray(grantTypes) || !grantTypes.every((grant) => typeof grant === 'string' && GRANT_TYPES.includes(grant))) {
    throw bad(`grant_types may hold only ${GRANT_TYPES.join(' and ')}`);
  }
  if (!grantTypes.includes('authorization_code')) throw bad('grant_types must include authorization_code: it is the only way to a first token here');
  const responseTypes = m.response_types ?? ['code'];
  if (!Array.isArray(responseTypes) || responseTypes.length !== 1 || responseTypes[0] !== 'code') throw bad('response_types must be ["code"]');
  const name = m.client_name;
  if (name !== undefined && (typeof name !== 'string' || name.length > LIMITS.nameLength)) throw bad(`client_name must be a string of at most ${LIMITS.nameLength} characters`);
  const scope = m.scope;
  if (scope !== undefined && (typeof scope !== 'string' || scope.length > LIMITS.scopeLength)) throw bad('scope must be a space-separated string');
  return {
    client_id: newSecret().slice(0, 32),
    client_name: typeof name === 'string' ? name.replace(/[\x00-\x1f\x7f]/g, '') : undefined,
    redirect_uris: [...new Set(redirectUris as string[])],
    grant_types: [...new Set(grantTypes as string[])],
    token_endpoint_auth_method: method as ClientAuthMethod,
    client_id_issued_at: Math.floor(Date.now() / 1000),
    ...(typeof scope === 'string' ? { scope } : {}),
  };
}
