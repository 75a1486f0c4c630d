import type { Registry } from 'prom-client';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import { RequestLimitMetrics } from '../observability/request-limit-metrics.ts';
import { openLimitStore, type LimitStore } from './limit-store.ts';
import { createRequestLimiter, scopeLimits, type RequestLimiter } from './request-limiter.ts';

/** Store failures are logged at most this often: an outage must not turn into one line per request. */
const STORE_ERROR_LOG_MS = 10_000;

/**
 * `limits.requests` for as long as the process runs. Each config (each reload) gets its own limiter, but
 * the buckets, the metrics and the store-failure log outlive it: a reload that changes a rate keeps what
 * every principal has spent. A store, once opened, stays open until `close`, so a reload refused after it
 * was opened leaves the running config's store untouched; stores are keyed by their settings.
 */
export class RequestLimits {
  readonly #stores = new Map<string, LimitStore>();
  readonly #metrics: RequestLimitMetrics;
  readonly #logger: Logger;
  #loggedAt = -Infinity;
  #unlogged = 0;

  constructor(deps: { registry: Registry; logger: Logger }) {
    this.#metrics = new RequestLimitMetrics(deps.registry);
    this.#logger = deps.logger;
  }

  /** The limiter for `config`, or undefined when it sets no limit. Throws a ConfigError when a Redis store's URL cannot be read. */
  limiterFor(config: Config): RequestLimiter | undefined {
    const { limits } = config;
    if (scopeLimits(limits.requests).length === 0) return undefined;
    const key = JSON.stringify(limits.store);
    let opened = this.#stores.get(key);
    if (!opened) this.#stores.set(key, (opened = openLimitStore(limits.store)));
    return createRequestLimiter(limits, { store: opened.store, metrics: this.#metrics, onStoreError: (error, action) => this.#storeFailed(error, action) });
  }

  close(): void {
    for (const opened of this.#stores.values()) opened.close();
    this.#stores.clear();
  }

  #storeFailed(error: unknown, action: 'allow' | 'deny'): void {
    const now = Date.now();
    if (now - this.#loggedAt < STORE_ERROR_LOG_MS) {
      this.#unlogged += 1;
      return;
    }
    this.#logger.warn({ err: error instanceof Error ? error.message : String(error), on_store_error: action, unlogged_failures: this.#unlogged }, 'rate limit store failed');
    this.#loggedAt = now;
    this.#unlogged = 0;
  }
}
