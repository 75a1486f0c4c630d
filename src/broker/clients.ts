import type { IncomingMessage } from 'node:http';
import { decodeJwt, type JWTVerifyGetKey } from 'jose';
import { readBasicCredentials } from '../auth/client-credentials.ts';
import type { SecretSource } from '../config/secret-source.ts';
import { authenticateByAssertion, type ClientAssertionSettings } from './client-assertion.ts';
import { validateMetadata, type BrokerClient, type ClientAuthMethod } from './client-metadata.ts';
import { ClientMetadataDocuments, ClientMetadataFailure } from './client-metadata-documents.ts';
import { refusal, type FormParams, type OAuthError } from './http.ts';
import { hashSecret, matchesHash, newSecret } from './secrets.ts';
import type { BrokerStore } from './store.ts';

/** Metadata document URLs make client ids long; anything longer is not looked up at all. */
const MAX_CLIENT_ID_LENGTH = 2000;

export interface PreRegistered {
  readonly client: BrokerClient;
  readonly secret: SecretSource | undefined;
  /** The keys of a private_key_jwt client. */
  readonly keys?: JWTVerifyGetKey;
}

/** How the broker knows a client, which decides what the consent page can vouch for. */
export type ClientKind = 'pre-registered' | 'metadata-document' | 'registered';

export class ClientRegistry {
  readonly #store: BrokerStore;
  readonly #preRegistered: ReadonlyMap<string, PreRegistered>;
  readonly #documents: ClientMetadataDocuments | undefined;
  readonly #assertions: ClientAssertionSettings | undefined;

  constructor(store: BrokerStore, preRegistered: readonly PreRegistered[], documents?: ClientMetadataDocuments, assertions?: ClientAssertionSettings) {
    this.#store = store;
    this.#preRegistered = new Map(preRegistered.map((entry) => [entry.client.client_id, entry]));
    this.#documents = documents;
    this.#assertions = assertions;
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

  /** Of a client `find` found: configured by the operator, fetched from its own URL, or self-registered. */
  kindOf(clientId: string): ClientKind {
    if (this.#preRegistered.has(clientId)) return 'pre-registered';
    if (this.#documents && ClientMetadataDocuments.names(clientId)) return 'metadata-document';
    return 'registered';
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
   * registered (a secret, a signed assertion, or none). Anything else is invalid_client (401), whichever
   * part was wrong.
   */
  async authenticate(req: IncomingMessage, form: FormParams): Promise<BrokerClient> {
    const basic = basicCredentials(req.headers.authorization);
    const asserted = form.has('client_assertion') || form.has('client_assertion_type');
    if ([basic !== undefined, form.has('client_secret'), asserted].filter(Boolean).length > 1) throw invalidClient('several_methods', 'use one client authentication method');
    if (asserted) {
      const settings = this.#assertions;
      if (!settings) throw invalidClient('wrong_method', 'no client here authenticates with private_key_jwt');
      return authenticateByAssertion(form, (id) => keyedClient(this.#preRegistered.get(id)), settings);
    }
    const clientId = basic?.id ?? form.get('client_id');
    if (clientId === undefined) throw invalidClient('no_credentials', 'client authentication required');
    if (basic && form.has('client_id') && form.get('client_id') !== basic.id) throw invalidClient('client_id_mismatch', 'client_id differs from the authenticated client');
    let client: BrokerClient | undefined;
    try {
      client = await this.find(clientId);
    } catch (error) {
      if (error instanceof ClientMetadataFailure) throw invalidClient('metadata_document', error.message);
      throw error;
    }
    if (!client) throw invalidClient('unknown_client', 'unknown client');
    const method = basic ? 'client_secret_basic' : form.has('client_secret') ? 'client_secret_post' : 'none';
    if (!this.#accepts(client, method)) throw invalidClient('wrong_method', `this client authenticates with ${client.token_endpoint_auth_method}`);
    if (method === 'none') return client;
    const presented = basic?.secret ?? form.get('client_secret')!;
    // RFC 6749 §2.3.1 has Basic credentials form-encoded; a client that skips it (the MCP SDK 2.4 does)
    // still sends the one secret, so the form as sent is compared too.
    if (!this.#secretMatches(client, presented) && !(basic && basic.rawSecret !== presented && this.#secretMatches(client, basic.rawSecret))) {
      throw invalidClient('bad_secret', 'client authentication failed');
    }
    return client;
  }

  /**
   * Whether the client may authenticate this way. A registered client is held to the method it registered;
   * a configured secret was handed over out of band, so it may travel either way RFC 6749 §2.3.1 allows.
   */
  #accepts(client: BrokerClient, method: ClientAuthMethod): boolean {
    if (method === client.token_endpoint_auth_method) return true;
    const secretMethods: readonly ClientAuthMethod[] = ['client_secret_basic', 'client_secret_post'];
    return this.#preRegistered.get(client.client_id)?.secret !== undefined && secretMethods.includes(method);
  }

  #secretMatches(client: BrokerClient, presented: string): boolean {
    if (client.client_secret_hash) return matchesHash(presented, client.client_secret_hash);
    const configured = this.#preRegistered.get(client.client_id)?.secret?.current();
    return configured?.ok === true && matchesHash(presented, hashSecret(configured.value));
  }
}

function invalidClient(reason: string, description: string): OAuthError {
  return refusal('invalid_client', reason, description);
}

function keyedClient(entry: PreRegistered | undefined): { client: BrokerClient; keys: JWTVerifyGetKey } | undefined {
  return entry?.keys === undefined ? undefined : { client: entry.client, keys: entry.keys };
}

/**
 * The client id a request names (Basic credentials, `client_id`, or a client assertion's `iss`), before it
 * is authenticated: for the per-client rate limit and the refusal's log line only.
 */
export function presentedClientId(req: IncomingMessage, form: FormParams): string | undefined {
  const basic = readBasicCredentials(req.headers.authorization);
  return (typeof basic === 'object' ? basic.id : undefined) ?? form.get('client_id') ?? assertedClientId(form.get('client_assertion'));
}

function assertedClientId(assertion: string | undefined): string | undefined {
  if (assertion === undefined) return undefined;
  try {
    const iss = decodeJwt(assertion).iss;
    return typeof iss === 'string' ? iss : undefined;
  } catch {
    return undefined;
  }
}

function basicCredentials(header: string | undefined): { id: string; secret: string; rawSecret: string } | undefined {
  const credentials = readBasicCredentials(header);
  if (credentials === 'malformed') throw invalidClient('malformed', 'malformed Basic credentials');
  return credentials;
}
