import type { BrokerConfig } from '../config/schema.ts';
import { MemoryBuckets, waitSeconds, type BucketStore, type Draw } from '../limits/bucket-store.ts';

export type LimitedEndpoint = 'registration' | 'authorize' | 'token';

const MINUTE_MS = 60_000;

/**
 * Requests per minute at the broker's endpoints that anyone can reach without a credential, per client
 * IP and (where the request names one) per client id: each bucket holds a minute's worth, so a burst of
 * that size passes and the rest is paced.
 */
export class BrokerRateLimits {
  readonly #settings: BrokerConfig['rate_limits'];
  readonly #store: BucketStore;

  constructor(settings: BrokerConfig['rate_limits'], store: BucketStore = new MemoryBuckets()) {
    this.#settings = settings;
    this.#store = store;
  }

  /** Takes the request's share; 0 when it may go on, else the seconds to wait (for Retry-After). */
  async take(endpoint: LimitedEndpoint, ip: string, clientId?: string): Promise<number> {
    const limits: { per_ip: number; per_client?: number } = this.#settings[endpoint];
    const draws: Draw[] = [{ bucket: `${endpoint}:ip`, key: ip, rate: { limit: limits.per_ip, windowMs: MINUTE_MS } }];
    if (clientId !== undefined && limits.per_client !== undefined) draws.push({ bucket: `${endpoint}:client`, key: clientId, rate: { limit: limits.per_client, windowMs: MINUTE_MS } });
    return waitSeconds(draws, await this.#store.take(draws));
  }
}
