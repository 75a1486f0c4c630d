import type { IncomingMessage } from 'node:http';
import { readBasicCredentials } from '../auth/client-credentials.ts';
import { isRedirectUriAllowed } from '../config/load.ts';
import type { SecretSource } from '../config/secret-source.ts';
import { ClientMetadataDocuments, ClientMetadataFailure } from './client-metadata-documents.ts';
import { OAuthError, type FormParams } from './http.ts';
import { hashSecret, matchesHash, newSecret } from './secrets.ts';
import type { BrokerStore } from './store.ts';

export type ClientAuthMethod = 'none' | 'client_secret_basic' | 'client_secret_post';
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
/** Metadata document URLs make client ids long; anything longer is not looked up at all. */
const MAX_CLIENT_ID_LENGTH = 2000;

export interface PreRegistered {
  readonly client: BrokerClient;
  readonly secret: SecretSource | undefined;
}

export class ClientRegistry {
  readonly #store: BrokerStore;
  readonly #preRegistered: ReadonlyMap<string, PreRegistered>;
  readonly #documents: ClientMetadataDocuments | undefined;

  constructor(store: BrokerStore, preRegistered: readonly PreRegistered[], documents?: ClientMetadataDocuments) {
    this.#store = store;
    this.#preRegistered = new Map(preRegistered.map((entry) => [entry.client.client_id, entry]));
    this.#documents = documents;
  }

  /**
   * A pre-registered or registered client, or the one a client ID metadata document describes. Throws
   * ClientMetadataFailure, saying why, for a metadata URL that cannot be used.
   */
  async find(clientId: string): Promise<BrokerClient | undefined> {
    if (clientId.length === 0 || clientId.length > MAX_CLIENT_ID_LENGTH) return undefined;
    const known = this.#preRegistered.get(clientId)?.client;
    if (known) return known;
    if (this.#documents && ClientMetadataDocuments.names(clientId)) return this.#documents.resolve(clientId);
    return this.#store.get<BrokerClient>('client', clientId);
  }

  /** RFC 7591 §3.2.1: the registered metadata, with a client secret only for a confidential client. */
  async register(metadata: unknown): Promise<Record<string, unknown>> {
    const client = validateMetadata(metadata);
    let secret: string | undefined;
    let stored: BrokerClient = client;
    if (client.token_endpoint_auth_method !== 'none') {
      secret = newSecret();
      stored = { ...client, client_secret_hash: hashSecret(secret) };
    }
    await this.#store.put('client', client.client_id, stored, undefined);
    const { client_secret_hash: _hash, ...shown } = stored;
    return { ...shown, response_types: ['code'], ...(secret ? { client_secret: secret, client_secret_expires_at: 0 } : {}) };
  }

  /**
   * RFC 6749 §2.3 and §3.2.1: the client of a token or revocation request, authenticated by the method it
   * registered. Anything else is invalid_client (401), whichever part was wrong.
   */
  async authenticate(req: IncomingMessage, form: FormParams): Promise<BrokerClient> {
    const basic = basicCredentials(req.headers.authorization);
    if (basic && form.has('client_secret')) throw invalidClient('use one client authentication method');
    const clientId = basic?.id ?? form.get('client_id');
    if (clientId === undefined) throw invalidClient('client authentication required');
    if (basic && form.has('client_id') && form.get('client_id') !== basic.id) throw invalidClient('client_id differs from the authenticated client');
    let client: BrokerClient | undefined;
    try {
      client = await this.find(clientId);
    } catch (error) {
      if (error instanceof ClientMetadataFailure) throw invalidClient(error.message);
      throw error;
    }
    if (!client) throw invalidClient('unknown client');
    const method = basic ? 'client_secret_basic' : form.has('client_secret') ? 'client_secret_post' : 'none';
    if (method !== client.token_endpoint_auth_method) throw invalidClient(`this client authenticates with ${client.token_endpoint_auth_method}`);
    if (method === 'none') return client;
    const presented = basic?.secret ?? form.get('client_secret')!;
    if (!this.#secretMatches(client, presented)) throw invalidClient('client authentication failed');
    return client;
  }

  #secretMatches(client: BrokerClient, presented: string): boolean {
    if (client.client_secret_hash) return matchesHash(presented, client.client_secret_hash);
    const configured = this.#preRegistered.get(client.client_id)?.secret?.current();
    return configured?.ok === true && matchesHash(presented, hashSecret(configured.value));
  }
}

function invalidClient(description: string): OAuthError {
  return new OAuthError('invalid_client', description, 401);
}

/** The client id a request names (Basic credentials or `client_id`), before it is authenticated. */
export function presentedClientId(req: IncomingMessage, form: FormParams): string | undefined {
  const basic = readBasicCredentials(req.headers.authorization);
  return (typeof basic === 'object' ? basic.id : undefined) ?? form.get('client_id');
}

function basicCredentials(header: string | undefined): { id: string; secret: string } | undefined {
  const credentials = readBasicCredentials(header);
  if (credentials === 'malformed') throw invalidClient('malformed Basic credentials');
  return credentials;
}


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
