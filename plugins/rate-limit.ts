/**
 * rate-limit: a token bucket per client. Each key gets a bucket of `burst`
 * tokens that refills at `rate` tokens per second; a request takes one token,
 * and a request that finds none is answered 429 with Retry-After and the
 * RateLimit-Limit / -Remaining / -Reset headers (IETF draft
 * "RateLimit header fields for HTTP"), without reaching a backend.
 *
 * ```toml
 * [[pipeline]]
 * plugin = "rate-limit"
 * rate = 100          # tokens per second
 * burst = 200         # bucket size
 * key = "client-ip"   # client-ip | header:NAME | cookie:NAME
 * store = "memory"
 * ```
 *
 * A `header:` or `cookie:` key that is missing from a request falls back to
 * the client's address, so leaving the header out does not escape the limit
 * and such clients do not all share one bucket.
 *
 * The memory store is bounded: buckets are kept in least-recently-used order,
 * a bucket idle for `burst / rate` seconds is full again (the same as having
 * no bucket) and is dropped, and past `max_keys` the least recently used one
 * is evicted, so a flood of distinct keys cannot exhaust memory (an evicted
 * client starts over with a full bucket). Buckets survive a reload that does
 * not change this plugin's table.
 */
import { createHash } from 'node:crypto';
import {
  acceptsOnlyJson,
  definePlugin,
  durationSchema,
  errorJson,
  parseDuration,
  readCookie,
  TIMER_BOUNDS,
  type Logger,
  type MiddlewareInstance,
  type Next,
  type PluginApi,
  type RequestContext,
} from '../src/index.js';

export interface RateLimitConfig {
  readonly rate: number;
  readonly burst: number;
  readonly key: string;
  readonly store: 'memory' | 'redis';
  readonly redis_url?: string;
  readonly redis_failure: 'open' | 'closed';
  readonly redis_timeout: string;
  readonly max_keys: number;
}

/** The outcome of taking a token from one key's bucket. */
export interface Decision {
  readonly allowed: boolean;
  /** Bucket size (`burst`). */
  readonly limit: number;
  /** Whole tokens left after this request. */
  readonly remaining: number;
  /** Milliseconds until a token is available; 0 when allowed. */
  readonly retryAfterMs: number;
  /** Milliseconds until the bucket is full again. */
  readonly resetMs: number;
}

/**
 * Where buckets live. `take` may answer synchronously (memory) or with a
 * promise (a shared store such as Redis); the plugin awaits only the latter.
 */
export interface RateLimitStore {
  take(key: string, now: number): Promise<Decision> | Decision;
  close?(): void | Promise<void>;
}

/** Mutable bucket state: tokens as of `updatedAt` (ms). */
export interface Bucket {
  tokens: number;
  updatedAt: number;
}

/** Tolerance for float error: 5 tokens/s × 200 ms must make a whole token (the Redis script uses it too). */
export const EPSILON = 1e-9;

/**
 * Refills `bucket` up to `now` and takes one token if there is one. Pure
 * token-bucket arithmetic: mutates only the bucket it is given. A clock that
 * goes backwards refills nothing.
 */
export function takeToken(bucket: Bucket, now: number, rate: number, burst: number): Decision {
  if (now > bucket.updatedAt) {
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.updatedAt) * rate) / 1000);
    bucket.updatedAt = now;
  }
  const allowed = bucket.tokens >= 1 - EPSILON;
  if (allowed) bucket.tokens = Math.max(0, bucket.tokens - 1);
  return {
    allowed,
    limit: burst,
    remaining: Math.floor(bucket.tokens + EPSILON),
    retryAfterMs: allowed ? 0 : ((1 - bucket.tokens) * 1000) / rate,
    resetMs: ((burst - bucket.tokens) * 1000) / rate,
  };
}

/** Buckets in process memory, bounded by `maxKeys` and by idle expiry. */
export class MemoryBucketStore implements RateLimitStore {
  /** Insertion order is kept as least recently used first. */
  private readonly buckets = new Map<string, Bucket>();
  /** A bucket untouched this long has refilled completely: dropping it changes nothing. */
  readonly idleMs: number;

  constructor(
    readonly rate: number,
    readonly burst: number,
    readonly maxKeys: number,
  ) {
    this.idleMs = (burst * 1000) / rate;
  }

  /** Buckets held right now. */
  get size(): number {
    return this.buckets.size;
  }

  take(key: string, now: number): Decision {
    const buckets = this.buckets;
    let bucket = buckets.get(key);
    if (bucket === undefined) {
      this.makeRoom(now);
      bucket = { tokens: this.burst, updatedAt: now };
    } else {
      buckets.delete(key);
    }
    buckets.set(key, bucket);
    return takeToken(bucket, now, this.rate, this.burst);
  }

  /** Drops full-again buckets from the idle end, then the least recently used one if still at the cap. */
  private makeRoom(now: number): void {
    const buckets = this.buckets;
    if (buckets.size === 0) return;
    const idleBefore = now - this.idleMs;
    for (const [key, bucket] of buckets) {
      if (bucket.updatedAt > idleBefore) break;
      buckets.delete(key);
    }
    if (buckets.size >= this.maxKeys) {
      for (const key of buckets.keys()) {
        buckets.delete(key);
        if (buckets.size < this.maxKeys) break;
      }
    }
  }
}

/** Longer keys are hashed so that huge header values cannot make huge map keys. */
const MAX_KEY_LENGTH = 128;
/** Prefixes that no header or cookie value can contain (control characters). */
const HASHED_PREFIX = '\u0001';
const FALLBACK_PREFIX = '\u0002';

function boundedKey(value: string): string {
  return value.length <= MAX_KEY_LENGTH ? value : HASHED_PREFIX + createHash('sha256').update(value).digest('base64');
}

/** Turns a request into its bucket key. */
export type KeyFunction = (ctx: RequestContext) => string;

/** `client-ip` | `header:NAME` | `cookie:NAME` → the function that reads it (built once). */
export function keyFunction(spec: string): KeyFunction {
  if (spec === 'client-ip') return (ctx) => ctx.clientIp;
  const colon = spec.indexOf(':');
  const kind = spec.slice(0, colon);
  const name = spec.slice(colon + 1);
  if (colon > 0 && name !== '' && kind === 'header') {
    const header = name.toLowerCase();
    return (ctx) => {
      const raw = ctx.headers[header];
      const value = typeof raw === 'string' ? raw : raw?.[0];
      return value ? boundedKey(value) : FALLBACK_PREFIX + ctx.clientIp;
    };
  }
  if (colon > 0 && name !== '' && kind === 'cookie') {
    return (ctx) => {
      const value = readCookie(ctx.headers.cookie, name);
      return value ? boundedKey(value) : FALLBACK_PREFIX + ctx.clientIp;
    };
  }
  throw new Error(`rate-limit: key = "${spec}" is not valid; write "client-ip", "header:NAME" or "cookie:NAME"`);
}

/** The 429 response headers for a refused request. */
export function limitHeaders(decision: Decision): Record<string, string> {
  return {
    'retry-after': String(Math.max(1, Math.ceil(decision.retryAfterMs / 1000))),
    'ratelimit-limit': String(decision.limit),
    'ratelimit-remaining': String(decision.remaining),
    'ratelimit-reset': String(Math.max(1, Math.ceil(decision.resetMs / 1000))),
    'content-type': 'text/plain; charset=utf-8',
  };
}

const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";

export const schema = {
  type: 'object',
  additionalProperties: false,
  description: 'Token-bucket rate limiting per client; excess requests get 429.',
  required: ['rate', 'burst'],
  properties: {
    rate: {
      type: 'number',
      exclusiveMinimum: 0,
      description: 'Tokens added to each bucket per second: the sustained request rate allowed per key (may be fractional, e.g. 0.5).',
    },
    burst: {
      type: 'integer',
      minimum: 1,
      description: 'Bucket size: how many requests a key may send at once after being idle.',
    },
    key: {
      type: 'string',
      pattern: `^(client-ip|header:${TOKEN}|cookie:${TOKEN})$`,
      default: 'client-ip',
      description: 'What identifies a client: "client-ip", "header:NAME" (e.g. "header:X-Api-Key") or "cookie:NAME". A missing header or cookie falls back to the client IP.',
    },
    store: {
      enum: ['memory', 'redis'],
      default: 'memory',
      description: 'Where buckets live: "memory" (per process) or "redis" (shared between instances; needs redis_url).',
    },
    redis_url: {
      type: 'string',
      pattern: '^rediss?://',
      description: 'Redis server for store = "redis", e.g. "redis://127.0.0.1:6379".',
    },
    redis_failure: {
      enum: ['open', 'closed'],
      default: 'open',
      description:
        'With store = "redis": what a request gets while Redis cannot answer — "open" lets it through, "closed" answers 429. The outage is logged once.',
    },
    redis_timeout: durationSchema(
      'With store = "redis": longest wait for Redis on a request before failing open or closed.',
      '100ms',
      TIMER_BOUNDS,
    ),
    max_keys: {
      type: 'integer',
      minimum: 1,
      default: 100_000,
      description: 'Most buckets the memory store keeps; past it the least recently used bucket is dropped (that client starts over with a full bucket).',
    },
  },
  if: { properties: { store: { const: 'redis' } }, required: ['store'] },
  then: { required: ['redis_url'] },
};

/**
 * The store a configuration asks for. The Redis one is imported only when
 * asked for: its client library adds ~14 MB to a process that loads it.
 */
export async function createStore(config: RateLimitConfig, logger: Logger): Promise<RateLimitStore> {
  if (config.store === 'redis') {
    const { RedisBucketStore } = await import('./rate-limit/redis-store.js');
    const timeoutMs = parseDuration(config.redis_timeout);
    const store = new RedisBucketStore({
      url: config.redis_url!,
      rate: config.rate,
      burst: config.burst,
      failure: config.redis_failure,
      timeoutMs,
      // Limits with other parameters (or keys) must not share buckets.
      keyPrefix: `switchyard:rl:${config.rate}:${config.burst}:${config.key}:`,
      logger,
    });
    // The first requests get a decision from Redis, not a failure while it connects. Redis
    // down delays the start by redis_timeout, at most a second (far inside create()'s deadline).
    await store.connected(Math.min(timeoutMs, 1000));
    if (store.wrongDatabase !== undefined) {
      await store.close();
      throw new Error(store.wrongDatabase);
    }
    return store;
  }
  return new MemoryBucketStore(config.rate, config.burst, config.max_keys);
}

/**
 * A store shared by the instances of consecutive generations: the running one
 * and the one a reload builds beside it (which may fail and be discarded).
 * It is closed when the last instance using it closes.
 */
export class SharedStore {
  users = 0;
  constructor(readonly store: RateLimitStore) {}
  release(): void | Promise<void> {
    if (--this.users === 0) return this.store.close?.();
  }
}

const REFUSED_BODY = 'Too Many Requests\n';
// As the core answers its own errors: JSON for a client that accepts only JSON.
const REFUSED_JSON = errorJson('LB_ERR_RATE_LIMITED');
const DONE: Promise<void> = Promise.resolve();

function settle(decision: Decision, ctx: RequestContext, next: Next): Promise<void> {
  if (decision.allowed) return next();
  const headers = limitHeaders(decision);
  if (acceptsOnlyJson(ctx.headers.accept)) {
    headers['content-type'] = 'application/json';
    ctx.respond(429, REFUSED_JSON, headers);
  } else {
    ctx.respond(429, REFUSED_BODY, headers);
  }
  return DONE;
}

async function settleLater(pending: Promise<Decision>, ctx: RequestContext, next: Next): Promise<void> {
  return settle(await pending, ctx, next);
}

export default definePlugin({
  name: 'rate-limit',
  kind: 'middleware',
  description: 'Token-bucket rate limiting per client IP, header or cookie.',
  schema,
  async create(config: RateLimitConfig, api: PluginApi): Promise<MiddlewareInstance> {
    const keyOf = keyFunction(config.key);
    // The previous generation's store, handed over because this table did not change.
    const shared = api.inherited instanceof SharedStore ? api.inherited : new SharedStore(await createStore(config, api.logger));
    shared.users++;
    const store = shared.store;
    const clock = api.clock;
    return {
      handle(ctx: RequestContext, next: Next): Promise<void> {
        const decision = store.take(keyOf(ctx), clock.now());
        if (typeof (decision as Promise<Decision>).then === 'function') return settleLater(decision as Promise<Decision>, ctx, next);
        return settle(decision as Decision, ctx, next);
      },
      handOver(): unknown {
        return shared;
      },
      close(): void | Promise<void> {
        return shared.release();
      },
    };
  },
});
