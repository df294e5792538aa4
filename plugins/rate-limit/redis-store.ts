/**
 * Rate-limit buckets in Redis, shared by every Switchyard instance that
 * points at the same server. One atomic Lua script per request refills and
 * takes a token using Redis's own clock, so instances with skewed clocks
 * still agree. One connection per plugin instance (handed over across
 * reloads), never one per request.
 *
 * When Redis is unreachable or slow, requests are not held: each decision
 * fails open (allowed) or closed (refused) after `timeoutMs`, as configured,
 * and the outage is logged once, and its end once.
 */
import { Redis } from 'ioredis';
import type { Logger } from '../../src/index.js';
import type { Decision, RateLimitStore } from '../rate-limit.js';

/**
 * KEYS[1] bucket; ARGV: rate (tokens/s), burst. Returns { allowed, milli-tokens left }.
 * Tokens are kept in milli-tokens as integers: Lua numbers returned to Redis
 * are truncated to integers, and integer math keeps instances in agreement.
 */
const TAKE_TOKEN = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2]) * 1000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'm', 't')
local tokens = tonumber(state[1])
local last = tonumber(state[2])
if tokens == nil or last == nil then
  tokens = burst
  last = now
end
if now > last then
  tokens = math.min(burst, tokens + math.floor((now - last) * rate))
  last = now
end
local allowed = 0
if tokens >= 1000 then
  tokens = tokens - 1000
  allowed = 1
end
redis.call('HSET', KEYS[1], 'm', tokens, 't', last)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate) + 1000)
return { allowed, tokens }
`;

type ScriptedRedis = Redis & { takeToken(key: string, rate: number, burst: number): Promise<[number, number]> };

export interface RedisStoreOptions {
  readonly url: string;
  readonly rate: number;
  readonly burst: number;
  /** What a request gets when Redis cannot answer: allowed ("open") or refused ("closed"). */
  readonly failure: 'open' | 'closed';
  readonly timeoutMs: number;
  /** Distinguishes limits with different parameters that share one Redis. */
  readonly keyPrefix: string;
  readonly logger: Logger;
}

export class RedisBucketStore implements RateLimitStore {
  readonly #redis: ScriptedRedis;
  readonly #options: RedisStoreOptions;
  readonly #failed: Decision;
  #available = true;

  constructor(options: RedisStoreOptions) {
    this.#options = options;
    this.#redis = new Redis(options.url, {
      // Fail fast instead of queueing requests behind a dead connection.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.timeoutMs,
      connectTimeout: Math.max(1000, options.timeoutMs),
      retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
      lazyConnect: false,
    }) as ScriptedRedis;
    this.#redis.defineCommand('takeToken', { numberOfKeys: 1, lua: TAKE_TOKEN });
    this.#redis.on('error', (err: Error) => this.#unavailable(err));
    this.#redis.on('ready', () => {
      if (this.#available) return;
      this.#available = true;
      options.logger.info({ redis: options.url }, `rate-limit: Redis at ${options.url} is reachable again`);
    });
    const burst = options.burst;
    this.#failed =
      options.failure === 'open'
        ? { allowed: true, limit: burst, remaining: burst, retryAfterMs: 0, resetMs: 0 }
        : { allowed: false, limit: burst, remaining: 0, retryAfterMs: 1000, resetMs: 1000 };
  }

  #unavailable(err: Error): void {
    if (!this.#available) return;
    this.#available = false;
    this.#options.logger.warn(
      { redis: this.#options.url, err: err.message },
      `rate-limit: Redis at ${this.#options.url} is unavailable (${err.message}); failing ${this.#options.failure} until it is back`,
    );
  }

  async take(key: string): Promise<Decision> {
    const { rate, burst, keyPrefix } = this.#options;
    try {
      const [allowed, milliTokens] = await this.#redis.takeToken(keyPrefix + key, rate, burst);
      const tokens = milliTokens / 1000;
      return {
        allowed: allowed === 1,
        limit: burst,
        remaining: Math.floor(tokens),
        retryAfterMs: allowed === 1 ? 0 : ((1 - tokens) * 1000) / rate,
        resetMs: ((burst - tokens) * 1000) / rate,
      };
    } catch (err) {
      this.#unavailable(err as Error);
      return this.#failed;
    }
  }

  async close(): Promise<void> {
    this.#redis.disconnect();
  }
}
