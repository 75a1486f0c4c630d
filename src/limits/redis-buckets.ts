import type { Redis } from 'ioredis';
import type { BucketStore, Decision, Draw } from './bucket-store.ts';

/**
 * The buckets as one Lua script on the shared server, so every replica draws from them at once and none
 * can let through what another already spent: allowed only if every key has a token, then one is taken
 * from each. Time is the server's, not the replicas'. A key lives as long as its bucket takes to fill up
 * again; after that, a missing key and a full bucket are the same.
 */
const TAKE = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local allowed = 1
local levels = {}
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i - 1])
  local rate = limit / tonumber(ARGV[2 * i])
  local state = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = math.min(limit, (tonumber(state[1]) or limit) + math.max(0, now - (tonumber(state[2]) or now)) * rate)
  levels[i] = tokens
  if tokens < 1 then allowed = 0 end
end
if allowed == 1 then
  for i, key in ipairs(KEYS) do
    local limit = tonumber(ARGV[2 * i - 1])
    levels[i] = levels[i] - 1
    redis.call('HSET', key, 'tokens', tostring(levels[i]), 'at', tostring(now))
    redis.call('PEXPIRE', key, math.ceil((limit - levels[i]) * tonumber(ARGV[2 * i]) / limit))
  end
end
local out = { allowed }
for i, level in ipairs(levels) do out[i + 1] = tostring(level) end
return out`;

export class RedisBuckets implements BucketStore {
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(redis: Redis, prefix: string) {
    this.#redis = redis;
    this.#prefix = prefix;
  }

  async take(draws: readonly Draw[]): Promise<Decision> {
    const keys = draws.map((draw) => `${this.#prefix}:rate:${draw.bucket}:${draw.key}`);
    const rates = draws.flatMap((draw) => [String(draw.rate.limit), String(draw.rate.windowMs)]);
    const [allowed, ...levels] = (await this.#redis.eval(TAKE, keys.length, ...keys, ...rates)) as [number, ...string[]];
    return { allowed: allowed === 1, levels: levels.map(Number) };
  }
}
