import { Counter, type Registry } from 'prom-client';

/** How a token request of the proxy's own ended; a closed set. */
export type TokenRequestResult = 'ok' | 'refused' | 'unavailable';

/** Tokens the proxy gets for the upstream (client credentials, token exchange), on the proxy's registry. */
export class UpstreamTokenMetrics {
  readonly #requests: Counter<'issuer' | 'grant' | 'result'>;
  readonly #cache: Counter<'result'>;

  constructor(registry: Registry) {
    this.#requests = new Counter({
      name: 'mcp_warden_upstream_token_requests_total',
      help: 'Token requests to get the upstream credential, by the configured issuer (or token endpoint), grant (client_credentials, token_exchange, entra_obo) and result (ok, refused, unavailable).',
      labelNames: ['issuer', 'grant', 'result'],
      registers: [registry],
    });
    this.#cache = new Counter({
      name: 'mcp_warden_upstream_token_cache_total',
      help: 'Exchanged tokens looked up per request: hit (cached), inflight (joined an exchange under way), miss (a new exchange).',
      labelNames: ['result'],
      registers: [registry],
    });
  }

  request(issuer: string, grant: string, result: TokenRequestResult): void {
    this.#requests.inc({ issuer, grant, result });
  }

  cache(result: 'hit' | 'inflight' | 'miss'): void {
    this.#cache.inc({ result });
  }
}
