import { TokenBuckets } from '../auth/token-buckets.ts';
import type { BrokerConfig } from '../config/schema.ts';

export type LimitedEndpoint = 'registration' | 'authorize' | 'token';

/**
 * Requests per minute at the broker's endpoints that anyone can reach without a credential, per client
 * IP and (where the request names one) per client id: each bucket holds a minute's worth, so a burst of
 * that size passes and the rest is paced.
 */
export class BrokerRateLimits {
  readonly #buckets = new Map<string, TokenBuckets>();

  constructor(settings: BrokerConfig['rate_limits']) {
    const add = (name: string, perMinute: number | undefined) => {
      if (perMinute !== undefined) this.#buckets.set(name, new TokenBuckets({ perSecond: perMinute / 60, burst: perMinute }));
    };
    add('registration ip', settings.registration.per_ip);
    add('authorize ip', settings.authorize.per_ip);
    add('authorize client', settings.authorize.per_client);
    add('token ip', settings.token.per_ip);
    add('token client', settings.token.per_client);
  }

  /** Takes the request's share; 0 when it may go on, else the seconds to wait (for Retry-After). */
  take(endpoint: LimitedEndpoint, ip: string, clientId?: string): number {
    const checks: Array<[TokenBuckets | undefined, string]> = [[this.#buckets.get(`${endpoint} ip`), ip]];
    if (clientId !== undefined) checks.push([this.#buckets.get(`${endpoint} client`), clientId]);
    const live = checks.filter((check): check is [TokenBuckets, string] => check[0] !== undefined);
    // Nothing is taken unless every bucket has room: a refused request costs no one's budget.
    const waits = live.map(([buckets, key]) => buckets.retryAfter(key));
    const wait = Math.max(0, ...waits);
    if (wait > 0) return wait;
    for (const [buckets, key] of live) buckets.take(key);
    return 0;
  }
}
