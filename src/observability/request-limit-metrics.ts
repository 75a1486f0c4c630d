import { Counter, type Registry } from 'prom-client';

/** What a request limit applies to; a closed set, so it can be a label. */
export type LimitScope = 'principal' | 'client' | 'ip';

export const LIMIT_SCOPES: readonly LimitScope[] = ['principal', 'client', 'ip'];

/** `limits.requests` on the proxy's registry: refusals by scope (never by whose), and bucket store failures. */
export class RequestLimitMetrics {
  readonly #limited: Counter<'scope'>;
  readonly #storeErrors: Counter<'action'>;

  constructor(registry: Registry) {
    this.#limited = new Counter({
      name: 'mcp_warden_rate_limited_requests_total',
      help: 'Requests refused 429 by limits.requests, by the scope whose bucket was empty longest (principal, client, ip).',
      labelNames: ['scope'],
      registers: [registry],
    });
    this.#storeErrors = new Counter({
      name: 'mcp_warden_rate_limit_store_errors_total',
      help: 'Rate limit decisions the bucket store could not make in time, by what limits.on_store_error did (allow, deny).',
      labelNames: ['action'],
      registers: [registry],
    });
    for (const scope of LIMIT_SCOPES) this.#limited.inc({ scope }, 0);
  }

  limited(scope: LimitScope): void {
    this.#limited.inc({ scope });
  }

  storeError(action: 'allow' | 'deny'): void {
    this.#storeErrors.inc({ action });
  }
}
