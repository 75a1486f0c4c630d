import { secondsUntilToken, TokenBuckets, type BucketRate } from './token-buckets.ts';

/** One bucket a request draws from: its table (what is limited, by what), the key in it, and its rate. */
export interface Draw {
  readonly bucket: string;
  readonly key: string;
  readonly rate: BucketRate;
}

/**
 * What the store decided for a set of draws: allowed only if every bucket had a token, and then one was
 * taken from each; `levels` are the buckets' tokens after that, in the draws' order.
 */
export interface Decision {
  readonly allowed: boolean;
  readonly levels: readonly number[];
}

/** Where the buckets live: this process, or a Redis server every replica shares. */
export interface BucketStore {
  /** One decision for all the draws at once; this process's buckets answer without a promise. */
  take(draws: readonly Draw[]): Decision | Promise<Decision>;
}

/** Seconds until every bucket of a refused decision has a token again (Retry-After); 0 when allowed. */
export function waitSeconds(draws: readonly Draw[], decision: Decision): number {
  if (decision.allowed) return 0;
  let wait = 0;
  for (let i = 0; i < draws.length; i += 1) wait = Math.max(wait, secondsUntilToken(decision.levels[i]!, draws[i]!.rate));
  return wait;
}

/** The buckets of this process, all tables in one LRU of `maxKeys` buckets. */
export class MemoryBuckets implements BucketStore {
  readonly #buckets: TokenBuckets;

  constructor(options: { maxKeys?: number; now?: () => number } = {}) {
    this.#buckets = new TokenBuckets(options);
  }

  take(draws: readonly Draw[]): Decision {
    const buckets = draws.map((draw) => this.#buckets.refilled(`${draw.bucket}\n${draw.key}`, draw.rate));
    const allowed = buckets.every((bucket) => bucket.tokens >= 1);
    if (allowed) for (const bucket of buckets) bucket.tokens -= 1;
    return { allowed, levels: buckets.map((bucket) => bucket.tokens) };
  }
}
