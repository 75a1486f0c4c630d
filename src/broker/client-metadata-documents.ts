import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { readFileSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import { rootCertificates } from 'node:tls';
import { LRUCache } from 'lru-cache';
import { Agent } from 'undici';
import { FetchFailure, fetchJson } from '../auth/fetch-json.ts';
import type { BrokerConfig } from '../config/schema.ts';
import { validateMetadata, type BrokerClient } from './client-metadata.ts';

/** Why a client ID metadata document could not be used; the message is shown to the user and the client. */
export class ClientMetadataFailure extends Error {
  override readonly name = 'ClientMetadataFailure';
}

/** Addresses a metadata fetch must not reach unless allowed: a client id must not be a way into the pod's network. */
const PRIVATE = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
  ['224.0.0.0', 3],
] as const) {
  PRIVATE.addSubnet(network, prefix, 'ipv4');
}
for (const [network, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const) {
  PRIVATE.addSubnet(network, prefix, 'ipv6');
}

export function isPrivateAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (mapped) return PRIVATE.check(mapped, 'ipv4');
  const family = isIP(address);
  if (family === 0) return true;
  return PRIVATE.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

const DEFAULT_TTL_MS = 5 * 60_000;
const MAX_CACHED = 1000;

/**
 * Client ID metadata documents (draft-ietf-oauth-client-id-metadata-document, MCP 2025-11-25): a
 * `client_id` that is an https URL names its own metadata. The fetch follows no redirect, reaches no
 * private or link-local address unless allowed (checked on the address actually connected to, so DNS
 * rebinding does not get around it), is bounded in time and size, and is cached within the document's
 * own Cache-Control and a maximum.
 */
export class ClientMetadataDocuments {
  readonly #settings: BrokerConfig['client_metadata'];
  readonly #agent: Agent;
  readonly #cache: LRUCache<string, BrokerClient>;
  readonly #pending = new Map<string, Promise<BrokerClient>>();

  constructor(settings: BrokerConfig['client_metadata']) {
    this.#settings = settings;
    const allowPrivate = settings.allow_private_addresses;
    this.#agent = new Agent({
      connect: {
        // `ca` replaces the default roots, so the extra authority is added to them.
        ...(settings.extra_ca_file ? { ca: [...rootCertificates, readFileSync(settings.extra_ca_file, 'utf8')] } : {}),
        lookup: (hostname: string, options: object, callback: (error: Error | null, address: string | LookupAddress[], family?: number) => void) => {
          dnsLookup(hostname, options as { all: true }, (error, addresses: LookupAddress[] | string, family?: number) => {
            if (error) return callback(error, '');
            const list = Array.isArray(addresses) ? addresses.map((entry) => entry.address) : [addresses];
            if (!allowPrivate && list.some(isPrivateAddress)) return callback(new ClientMetadataFailure(`${hostname} resolves to a private address`), '');
            callback(null, addresses, family);
          });
        },
      },
    });
    this.#cache = new LRUCache({ max: MAX_CACHED, ttl: settings.cache_max_ttl, ttlAutopurge: false });
  }

  /** Whether a client id is one of these (an http(s) URL), rather than a registered id. */
  static names(clientId: string): boolean {
    return clientId.startsWith('https://') || clientId.startsWith('http://');
  }

  /** The client a metadata URL describes; throws ClientMetadataFailure with the reason. */
  resolve(clientId: string): Promise<BrokerClient> {
    const cached = this.#cache.get(clientId);
    if (cached) return Promise.resolve(cached);
    let pending = this.#pending.get(clientId);
    if (!pending) {
      pending = this.#fetch(clientId).finally(() => this.#pending.delete(clientId));
      this.#pending.set(clientId, pending);
    }
    return pending;
  }

  close(): Promise<void> {
    return this.#agent.close();
  }

  async #fetch(clientId: string): Promise<BrokerClient> {
    const url = this.#checkedUrl(clientId);
    let document: unknown;
    let cacheControl: string | string[] | undefined;
    try {
      document = await fetchJson(url.href, {
        timeoutMs: this.#settings.timeout,
        maxBytes: this.#settings.max_bytes,
        dispatcher: this.#agent,
        onHeaders: (headers) => (cacheControl = headers['cache-control']),
      });
    } catch (error) {
      throw this.#explained(clientId, error);
    }
    const client = this.#client(clientId, document);
    const ttl = cacheTtl(cacheControl, this.#settings.cache_max_ttl);
    if (ttl > 0) this.#cache.set(clientId, client, { ttl });
    return client;
  }

  /** A failed fetch, said in the terms of a client metadata document. */
  #explained(clientId: string, error: unknown): ClientMetadataFailure {
    // The lookup's refusal of a private address arrives wrapped in the connection error.
    for (let cause = error; cause instanceof Error; cause = cause.cause) if (cause instanceof ClientMetadataFailure) return cause;
    if (!(error instanceof FetchFailure)) return new ClientMetadataFailure(`fetching ${clientId} failed: ${(error as Error).message}`);
    const status = error.status ?? 0;
    switch (error.kind) {
      case 'status':
        return new ClientMetadataFailure(status >= 300 && status < 400 ? `${clientId} redirects; client metadata documents are not fetched through redirects` : `${clientId} answered ${status}`);
      case 'too_large':
        return new ClientMetadataFailure(`${clientId} is larger than ${this.#settings.max_bytes} bytes`);
      case 'invalid_json':
        return new ClientMetadataFailure(`${clientId} is not JSON`);
      case 'timeout':
        return new ClientMetadataFailure(`fetching ${clientId} timed out`);
      default:
        return new ClientMetadataFailure(`fetching ${clientId} failed: ${error.message}`);
    }
  }

  #checkedUrl(clientId: string): URL {
    let url: URL;
    try {
      url = new URL(clientId);
    } catch {
      throw new ClientMetadataFailure('the client id is not a URL');
    }
    const loopbackHttp = url.protocol === 'http:' && this.#settings.insecure_allow_http_loopback && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
    if (url.protocol !== 'https:' && !loopbackHttp) throw new ClientMetadataFailure('a client id URL must be https');
    if (url.href !== clientId || url.pathname === '/' || url.hash || url.username || url.password) {
      throw new ClientMetadataFailure('a client id URL must be in normal form, with a path, and without a fragment or credentials');
    }
    // An address literal is never looked up, so the lookup's check would not see it.
    const literal = url.hostname.replace(/^\[|\]$/g, '');
    if (isIP(literal) !== 0 && !this.#settings.allow_private_addresses && isPrivateAddress(literal)) {
      throw new ClientMetadataFailure(`${url.hostname} is a private address`);
    }
    return url;
  }

  #client(clientId: string, document: unknown): BrokerClient {
    if (typeof document !== 'object' || document === null || Array.isArray(document)) throw new ClientMetadataFailure(`${clientId} is not a JSON object`);
    const metadata = document as Record<string, unknown>;
    if (metadata.client_id !== clientId) throw new ClientMetadataFailure(`the document at ${clientId} names another client_id`);
    const method = metadata.token_endpoint_auth_method ?? 'none';
    if (method !== 'none') throw new ClientMetadataFailure('a client metadata document cannot hold a shared secret: token_endpoint_auth_method must be none');
    try {
      return { ...validateMetadata({ ...metadata, token_endpoint_auth_method: 'none' }), client_id: clientId };
    } catch (error) {
      throw new ClientMetadataFailure(`the document at ${clientId} is not usable: ${(error as Error).message}`);
    }
  }
}

/** Seconds from `max-age` within the maximum; `no-store` and `no-cache` keep nothing. */
function cacheTtl(header: string | string[] | undefined, maxMs: number): number {
  const value = (Array.isArray(header) ? header.join(',') : (header ?? '')).toLowerCase();
  if (/(^|[\s,])(no-store|no-cache)([\s,=]|$)/.test(value)) return 0;
  const maxAge = /(^|[\s,])max-age=(\d+)/.exec(value)?.[2];
  return Math.min(maxAge === undefined ? DEFAULT_TTL_MS : Number(maxAge) * 1000, maxMs);
}
