/**
 * Rate-limit buckets in Redis, shared by every Switchyard instance that
 * points at the same server. One atomic Lua script per request refills and
 * takes a token using Redis's own clock, so instances with skewed clocks
 * still agree. One connection per plugin instance (handed over across
 * reloads), never one per request.
 *
 * When Redis is unreachable or slow, requests are not held: each decision
 * fails open (allowed) or closed (refused) after `timeoutMs`, as configured,
 * and at once while a command that timed out is still unanswered: then only
 * that one waits in the connection, so a stalled Redis cannot make commands
 * (and memory) pile up at the request rate. Each outage is logged once, when
 * a command first fails, and its end once, when Redis has answered every
 * command in time for a second: a Redis whose latency hovers around the
 * timeout is one outage, not a warning every few requests.
 *
 * A database the server does not have (`redis://host/99` where it has 16)
 * is refused by Redis's SELECT, after which the client would go on in
 * database 0, mixing this limit's buckets with whatever lives there. So a
 * refused SELECT fails the start (or the reload), and on a later connection
 * makes every decision the configured failure until a SELECT succeeds.
 */
import { Redis } from 'ioredis';
import type { Logger } from '../../src/index.js';
import { EPSILON, type Decision, type RateLimitStore } from '../rate-limit.js';

/**
 * KEYS[1] bucket; ARGV: rate (tokens/s), burst. Returns { allowed, milli-tokens left }.
 *
 * Tokens are kept as a float and time in microseconds (Redis's TIME), so a
 * refill is exact however often a key asks: a slow rate (0.2/s) asked every
 * millisecond still adds up to a token every 5 s. Every instance runs this
 * same script inside the one Redis, so they agree without integer math. The
 * fields are written with 17 significant digits so nothing is lost between
 * requests; the reply is in whole milli-tokens because Redis truncates Lua
 * numbers to integers. (Fields `m`/`t` of an older version's buckets are
 * ignored: such a bucket starts full once.)
 */
const TAKE_TOKEN = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'us')
local tokens = tonumber(state[1])
local last = tonumber(state[2])
if tokens == nil or last == nil then
  tokens = burst
  last = now
end
if now > last then
  tokens = math.min(burst, tokens + (now - last) * rate / 1000000)
  last = now
end
local allowed = 0
if tokens >= 1 - ${EPSILON} then
  tokens = math.max(0, tokens - 1)
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'us', string.format('%.17g', last))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return { allowed, math.floor(tokens * 1000 + ${EPSILON}) }
`;

/** How long Redis must answer every command in time before an outage is logged as over. */
export const RECOVERY_MS = 1000;

/** The URL as logs may show it: a password in it is masked. */
export function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password === '') return url;
    parsed.password = '***';
    return parsed.href;
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//***@');
  }
}

const TIMED_OUT = new Error('Command timed out');

/**
 * How long a command may stay unanswered before its connection is replaced
 * (at least this, and at least 5 × redis_timeout). A peer that vanished
 * without a reset (a failover moving an address, a dropped route) leaves
 * the connection up for as long as TCP retransmits, ~15 minutes on Linux;
 * a Redis that is only busy (a slow script, a fork) answers well before.
 */
const STUCK_CONNECTION_MS = 5000;

type ScriptedRedis = Redis & { takeToken(key: string, rate: number, burst: number): Promise<[number, number]> };

export interface RedisStoreOptions {
  readonly url: string;
  readonly rate: number;
  readonly burst: number;
  /** What a request gets when Redis cannot answer: allowed ("open") or refused ("closed"). */
  readonly failure: 'open' | 'closed';
  readonly timeoutMs: number;
  /** A command unanswered this long replaces the connection; default: see STUCK_CONNECTION_MS. */
  readonly stuckMs?: number;
  /** Distinguishes limits with different parameters that share one Redis. */
  readonly keyPrefix: string;
  readonly logger: Logger;
}

export class RedisBucketStore implements RateLimitStore {
  readonly #redis: ScriptedRedis;
  readonly #options: RedisStoreOptions;
  readonly #failed: Decision;
  /** For logs: never the password. */
  readonly #where: string;
  /** Connected once, or given up waiting for that: see `connected()`. */
  readonly #firstReady: Promise<void>;
  #available = true;
  /** While unavailable: since when every command was answered in time (0: one failed since). */
  #answeredSince = 0;
  /** Whether the last command that settled was answered in time. */
  #answering = true;
  /** Commands sent whose reply has not come (a timed-out one still waits in the connection). */
  #unanswered = 0;
  /** When the last command was sent: while Redis is not answering, when the one it holds was. */
  #lastSentAt = 0;
  readonly #stuckMs: number;
  /** Why this connection must not be used: Redis refused the database redis_url names. */
  #wrongDatabase: string | undefined;

  constructor(options: RedisStoreOptions) {
    this.#options = options;
    this.#where = redactedUrl(options.url);
    this.#stuckMs = options.stuckMs ?? Math.max(STUCK_CONNECTION_MS, 5 * options.timeoutMs);
    // Timed by take() itself, which must know when a timed-out command is answered.
    this.#redis = new Redis(options.url, {
      // Fail fast instead of queueing requests behind a dead connection.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: Math.max(1000, options.timeoutMs),
      // Every decision fails open or closed until Redis is back: try again often
      // (a refused connect costs next to nothing), so a restarted Redis is used within a second.
      retryStrategy: (attempt) => Math.min(attempt * 200, 1000),
      lazyConnect: false,
    }) as ScriptedRedis;
    this.#redis.defineCommand('takeToken', { numberOfKeys: 1, lua: TAKE_TOKEN });
    // Availability follows what commands see. A stalled server times commands
    // out while the connection stays up, so no 'ready' follows its recovery:
    // commands answered in time again (for RECOVERY_MS) are what end the outage.
    this.#redis.on('error', (err: Error) => this.#onError(err));
    // Each connection selects the database again; a refusal comes before 'ready'.
    this.#redis.on('connect', () => (this.#wrongDatabase = undefined));
    this.#firstReady = new Promise((resolve) => {
      this.#redis.once('ready', resolve);
      this.#redis.once('end', resolve);
    });
    const burst = options.burst;
    this.#failed =
      options.failure === 'open'
        ? { allowed: true, limit: burst, remaining: burst, retryAfterMs: 0, resetMs: 0 }
        : { allowed: false, limit: burst, remaining: 0, retryAfterMs: 1000, resetMs: 1000 };
  }

  /**
   * Resolves once the first connection is ready, or after `ms` (Redis down):
   * so that requests right after a start or a reload do not fail open or
   * closed while a healthy Redis is still being connected to.
   */
  connected(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
    return Promise.race([this.#firstReady, waited]).finally(() => clearTimeout(timer));
  }

  /** Why the database in redis_url cannot be used, or undefined. */
  get wrongDatabase(): string | undefined {
    return this.#wrongDatabase;
  }

  #onError(err: Error): void {
    if ((err as Error & { command?: { name?: string } }).command?.name !== 'select') {
      this.#unavailable(err);
      return;
    }
    const database = this.#redis.options.db ?? 0;
    const first = this.#wrongDatabase === undefined;
    this.#wrongDatabase = `Redis at ${this.#where} has no database ${database} (${err.message}); choose one it has in redis_url (0 to 15 unless its redis.conf sets \`databases\`)`;
    if (first) this.#options.logger.error({ redis: this.#where, database, err: err.message }, `rate-limit: ${this.#wrongDatabase}; failing ${this.#options.failure} meanwhile`);
  }

  #unavailable(err: Error): void {
    this.#answering = false;
    this.#answeredSince = 0;
    if (!this.#available) return;
    this.#available = false;
    this.#options.logger.warn(
      { redis: this.#where, err: err.message },
      `rate-limit: Redis at ${this.#where} is unavailable (${err.message}); failing ${this.#options.failure} until it is back`,
    );
  }

  #answered(): void {
    this.#answering = true;
    if (this.#available) return;
    const now = Date.now();
    if (this.#answeredSince === 0) this.#answeredSince = now;
    if (now - this.#answeredSince < RECOVERY_MS) return;
    this.#available = true;
    this.#options.logger.info({ redis: this.#where }, `rate-limit: Redis at ${this.#where} is reachable again`);
  }

  #settled = (): void => {
    this.#unanswered--;
  };

  /** The reply, or TIMED_OUT after `timeoutMs`; the command itself stays counted until its reply comes. */
  #send(key: string): Promise<[number, number]> {
    const { rate, burst, timeoutMs } = this.#options;
    const reply = this.#redis.takeToken(key, rate, burst);
    this.#unanswered++;
    this.#lastSentAt = Date.now();
    reply.then(this.#settled, this.#settled);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => (timer = setTimeout(reject, timeoutMs, TIMED_OUT)));
    return Promise.race([reply, late]).finally(() => clearTimeout(timer));
  }

  async take(key: string): Promise<Decision> {
    const { rate, burst, keyPrefix } = this.#options;
    // Never database 0 instead of the configured one.
    if (this.#wrongDatabase !== undefined) return this.#failed;
    // Redis stopped answering: until the command it has is answered, send no more.
    if (!this.#answering && this.#unanswered > 0) {
      if (Date.now() - this.#lastSentAt >= this.#stuckMs) this.#replaceConnection();
      return this.#failed;
    }
    try {
      const [allowed, milliTokens] = await this.#send(keyPrefix + key);
      this.#answered();
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

  /**
   * Destroys a connection whose peer stopped answering: the client rejects
   * what waited in it (maxRetriesPerRequest 0) and connects again, so a
   * Redis reachable anew — on a new path, or the same server — is used.
   */
  #replaceConnection(): void {
    this.#lastSentAt = Date.now();
    this.#options.logger.warn(
      { redis: this.#where },
      `rate-limit: Redis at ${this.#where} left a command unanswered for ${this.#stuckMs} ms; reconnecting`,
    );
    this.#redis.stream?.destroy();
  }

  async close(): Promise<void> {
    this.#redis.disconnect();
  }
}
