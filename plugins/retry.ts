/**
 * retry: sends a failed request again, to a different backend when the pool
 * has one (the core keeps backends already tried out of selection).
 *
 * ```toml
 * [[pipeline]]
 * plugin = "retry"
 * attempts = 3                     # total tries, the first included
 * backoff = "50ms"                 # doubles each retry, with jitter
 * methods = ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]
 * on = ["connect-error", "502", "503", "504"]
 * budget = { ratio = 0.2, min_per_second = 10 }   # optional
 * ```
 *
 * What is retried:
 * - A connect error — refused, unreachable, not accepted within
 *   `connect_timeout`, or not opened at all because this process ran short
 *   of file descriptors, memory or local ports (LB_ERR_LOCAL_RESOURCES):
 *   nothing reached the backend — is retried for every method, when `on`
 *   lists "connect-error".
 * - Anything else — a reset, a timeout, a listed status from a backend — is
 *   retried only for a method in `methods`, and only when the request body
 *   can be sent again: no body, or a body that fit in `max_replay_body` and
 *   was buffered before the first try. A larger body streams through once.
 * - Local answers (from the core or another plugin) are never retried.
 * - Once the client has closed its connection, no further try is sent (the
 *   core refuses to start one, LB_ERR_CLIENT_GONE), so an abandoned DELETE
 *   is not repeated on another backend.
 *
 * Between tries it waits `backoff × 2^(n-1)` for the n-th retry, capped at
 * ten times `backoff` (as Envoy does), times a random factor in [0.5, 1.5)
 * so that clients failing together do not retry together.
 *
 * With a `budget`, retries over the last 10 s may number at most `ratio` ×
 * the requests seen plus `min_per_second` × 10 (per process, as Linkerd
 * does): when a backend fails for everyone, retries stop multiplying its
 * load. A try the budget has no room for is not retried: its failure is the
 * answer.
 *
 * Order: put circuit-breaker after retry in the pipeline so that every try
 * is recorded by the breaker and skips backends whose circuit is open.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  definePlugin,
  durationSchema,
  isConnectFailure,
  LbError,
  parseDuration,
  parseSize,
  sizeSchema,
  type MiddlewareInstance,
  type Next,
  type PluginApi,
  type RequestContext,
} from '../src/index.js';
import { RETRY_BUDGET_WINDOW_S, RetryBudget } from './retry/budget.js';

export interface RetryConfig {
  readonly attempts: number;
  readonly backoff: string;
  readonly on: readonly string[];
  readonly methods: readonly string[];
  readonly max_replay_body: string;
  readonly budget?: { readonly ratio: number; readonly min_per_second: number };
}

/** What one try ended with: a kind of transport failure, or a backend's status code. */
export type Outcome = 'connect-error' | 'reset' | 'timeout' | 'other-error' | number;

/** The compiled form of `on` and `methods`. */
export interface RetryPolicy {
  /** Total tries, the first included. */
  readonly attempts: number;
  readonly connectError: boolean;
  readonly reset: boolean;
  readonly timeout: boolean;
  /** Backend statuses to retry. */
  readonly statuses: ReadonlySet<number>;
  /** Methods retried on more than connect errors (upper-case). */
  readonly methods: ReadonlySet<string>;
}

/** The waits grow no further than this many times the base (Envoy's default cap). */
export const MAX_BACKOFF_FACTOR = 10;

/**
 * Milliseconds to wait before retry number `retryNumber` (1 = the first
 * retry): `base × 2^(retryNumber-1)`, capped at `base × 10`, times a jitter
 * factor `0.5 + random` where `random` is in [0, 1).
 */
export function backoffDelay(base: number, retryNumber: number, random: number): number {
  const exponential = base * 2 ** Math.max(0, retryNumber - 1);
  return Math.min(exponential, base * MAX_BACKOFF_FACTOR) * (0.5 + random);
}

/** `on` and `methods` as configured → a policy. */
export function compilePolicy(config: Pick<RetryConfig, 'attempts' | 'on' | 'methods'>): RetryPolicy {
  const statuses = new Set<number>();
  for (const item of config.on) if (/^\d{3}$/.test(item)) statuses.add(Number(item));
  return {
    attempts: config.attempts,
    connectError: config.on.includes('connect-error'),
    reset: config.on.includes('reset'),
    timeout: config.on.includes('timeout'),
    statuses,
    methods: new Set(config.methods.map((m) => m.toUpperCase())),
  };
}

/**
 * A thrown error → the kind of failure it is (LbError codes from the core).
 * A connect timeout is a connect error: the connection was never accepted,
 * so nothing reached the backend; so is a connection this process could not
 * open for lack of its own resources (`isConnectFailure` says which). An
 * invalid response is none of the kinds `on` names: the backend did answer,
 * and what it does with a second try is unknown.
 */
export function outcomeOfError(err: unknown): Outcome {
  if (!(err instanceof LbError)) return 'other-error';
  if (isConnectFailure(err)) return 'connect-error';
  switch (err.code) {
    case 'LB_ERR_UPSTREAM_RESET':
      return 'reset';
    case 'LB_ERR_UPSTREAM_TIMEOUT':
      return 'timeout';
    default:
      return 'other-error';
  }
}

/**
 * Whether try number `attempt` (1 = the first), which ended with `outcome`,
 * is followed by another.
 *
 * @param methodRetryable the request's method is in `methods`
 * @param replayable the body can be sent again (none, or buffered)
 */
export function shouldRetry(policy: RetryPolicy, outcome: Outcome, attempt: number, methodRetryable: boolean, replayable: boolean): boolean {
  if (attempt >= policy.attempts) return false;
  // Nothing reached the backend: safe for every method and every body.
  if (outcome === 'connect-error') return policy.connectError;
  if (!methodRetryable || !replayable) return false;
  if (outcome === 'reset') return policy.reset;
  if (outcome === 'timeout') return policy.timeout;
  if (outcome === 'other-error') return false;
  return policy.statuses.has(outcome);
}

export const schema = {
  type: 'object',
  additionalProperties: false,
  description: 'Retries failed requests on another backend, with exponential backoff.',
  properties: {
    attempts: {
      type: 'integer',
      minimum: 1,
      maximum: 10,
      default: 3,
      description: 'Total tries, the first included (1 turns retries off).',
    },
    // A wait of up to 15× this (ten times, jittered): a minute keeps it a retry, not an outage of its own.
    backoff: durationSchema(
      'Wait before the first retry; it doubles for each further retry (capped at ten times this value) and is jittered by ±50%.',
      '50ms',
      { max: '1m' },
    ),
    on: {
      type: 'array',
      uniqueItems: true,
      default: ['connect-error', '502', '503', '504'],
      description:
        'What is retried: "connect-error" (the backend could not be reached, did not accept the connection within connect_timeout, or no connection could be opened for lack of local resources such as file descriptors; retried for every method), "reset" (the connection closed before a response), "timeout" (no response within response_timeout), or a 4xx/5xx status as a string, e.g. "503". An invalid response from a backend is never retried.',
      items: {
        type: 'string',
        pattern: '^(connect-error|reset|timeout|[45][0-9][0-9])$',
        description: '"connect-error", "reset", "timeout", or a 4xx/5xx status code as a string such as "503"',
      },
    },
    methods: {
      type: 'array',
      uniqueItems: true,
      default: ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'],
      description:
        'Methods retried on resets, timeouts and statuses; others (POST, PATCH unless listed) are retried only on connect errors, when nothing reached the backend.',
      items: { type: 'string', pattern: '^[A-Za-z]+$', description: 'an HTTP method such as "GET"' },
    },
    max_replay_body: sizeSchema(
      'Largest request body kept in memory so that it can be sent again; a larger body is streamed once and its request is retried only on connect errors.',
      '1MB',
    ),
    budget: {
      type: 'object',
      additionalProperties: false,
      required: ['ratio'],
      description: `Caps retries, per process, at a share of recent traffic: over the last ${RETRY_BUDGET_WINDOW_S} s, at most ratio × requests + min_per_second × ${RETRY_BUDGET_WINDOW_S}. A failure the budget has no room to retry is answered as it is. Unset: no cap beyond attempts.`,
      properties: {
        ratio: {
          type: 'number',
          minimum: 0,
          maximum: 1,
          description: 'Retries allowed per request, e.g. 0.2 for one retry per five requests.',
        },
        min_per_second: {
          type: 'integer',
          minimum: 0,
          default: 10,
          description: 'Retries allowed per second on top of the ratio, so that a service with little traffic can still retry.',
        },
      },
    },
  },
};

export default definePlugin({
  name: 'retry',
  kind: 'middleware',
  description: 'Retries failed requests on another backend with exponential backoff and jitter.',
  schema,
  create(config: RetryConfig, api: PluginApi): MiddlewareInstance {
    const policy = compilePolicy(config);
    const base = parseDuration(config.backoff);
    const maxReplay = parseSize(config.max_replay_body);
    const logger = api.logger;
    const clock = api.clock;

    if (policy.attempts <= 1) return { handle: (ctx: RequestContext, next: Next) => next() };

    const budgetConfig = config.budget;
    const inherited = api.inherited;
    // The core hands state over only when this table did not change, so an inherited budget has the same limits.
    const budget =
      budgetConfig === undefined
        ? undefined
        : inherited instanceof RetryBudget
          ? inherited
          : new RetryBudget(budgetConfig.ratio, budgetConfig.min_per_second);

    /** Whether the budget (if any) has room for one more retry; counts it when it has. */
    function budgetAllows(ctx: RequestContext, outcome: Outcome): boolean {
      if (budget === undefined || budget.tryRetry(clock.now())) return true;
      logger.debug({ backend: ctx.backend?.url, outcome }, 'not retrying: the retry budget is spent');
      return false;
    }

    async function wait(retryNumber: number): Promise<void> {
      const delay = backoffDelay(base, retryNumber, Math.random());
      if (delay >= 1) await sleep(delay);
    }

    async function handleRetrying(ctx: RequestContext, next: Next, methodRetryable: boolean): Promise<void> {
      let replayable = true;
      const body = ctx.body;
      if (Buffer.isBuffer(body)) {
        // Already in memory (the core reads small bodies whole): max_replay_body is still the policy.
        replayable = body.length <= maxReplay;
      } else if (body !== null) {
        // Buffer only what may be sent again; otherwise stream it once.
        replayable = methodRetryable && (await ctx.bufferBody(maxReplay)) !== undefined;
      }
      for (let attempt = 1; ; attempt++) {
        try {
          await next();
        } catch (err) {
          const outcome = outcomeOfError(err);
          if (!shouldRetry(policy, outcome, attempt, methodRetryable, replayable) || !budgetAllows(ctx, outcome)) throw err;
          logger.debug({ attempt, backend: ctx.backend?.url, outcome }, 'retrying request');
          await wait(attempt);
          continue;
        }
        const response = ctx.response;
        if (response === undefined || response.source !== 'backend') return;
        if (!shouldRetry(policy, response.status, attempt, methodRetryable, replayable) || !budgetAllows(ctx, response.status)) return;
        logger.debug({ attempt, backend: ctx.backend?.url, outcome: response.status }, 'retrying request');
        await wait(attempt);
      }
    }

    return {
      handle(ctx: RequestContext, next: Next): Promise<void> {
        if (budget !== undefined) budget.recordRequest(clock.now());
        const methodRetryable = policy.methods.has(ctx.method);
        // Nothing this request could be retried on: stay out of the way.
        if (!methodRetryable && !policy.connectError) return next();
        return handleRetrying(ctx, next, methodRetryable);
      },
      handOver(): unknown {
        return budget;
      },
    };
  },
});
