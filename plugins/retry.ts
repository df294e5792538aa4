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
 * max_replay_body = "1MB"          # largest body kept to be sent again
 * max_replay_memory = "64MB"       # all such bodies held at once, per process
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
 * - Bodies buffered for replay share `max_replay_memory`, per process: a
 *   body that finds it full streams through once like a large one (a warning
 *   says so, at most one line per 10 s with a count), so that many
 *   concurrent uploads cannot hold max_replay_body each and run the process
 *   out of memory. Bodies the core already read whole (a Content-Length of
 *   at most 64 KB) cost nothing more and are not counted.
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
  RepeatedWarnings,
  sizeSchema,
  type MiddlewareInstance,
  type Next,
  type PluginApi,
  type RequestContext,
} from '../src/index.js';
import { RETRY_BUDGET_WINDOW_S, RetryBudget } from './retry/budget.js';
import { ReplayMemory, type ReplayReservation } from './retry/replay-memory.js';

export interface RetryConfig {
  readonly attempts: number;
  readonly backoff: string;
  readonly on: readonly string[];
  readonly methods: readonly string[];
  readonly max_replay_body: string;
  readonly max_replay_memory: string;
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
    max_replay_memory: sizeSchema(
      'Most request-body bytes held at once so that they can be sent again, over all requests in flight through this retry table, per process (each cluster worker has its own). A body that finds no room is streamed once and retried only on connect errors, like one over max_replay_body, and a warning says so (at most one line per 10 s). Bodies with a Content-Length of at most 64 KB, which the core reads whole anyway, do not count.',
      '64MB',
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

/**
 * What the instances of one retry table share across a reload: the retry
 * budget (when there is one) and the replay memory, so that both stay per
 * process while an old instance drains beside its successor.
 */
export class RetrySharedState {
  constructor(
    readonly budget: RetryBudget | undefined,
    readonly replayMemory: ReplayMemory,
  ) {}
}

/** A Content-Length header's value as a number; undefined when there is none (a chunked body) or it is not one. */
function declaredLength(header: string | string[] | undefined): number | undefined {
  if (typeof header !== 'string') return undefined;
  const length = Number(header);
  return Number.isSafeInteger(length) && length >= 0 ? length : undefined;
}

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
    // The core hands state over only when this table did not change, so inherited state has the same limits.
    // A changed table starts afresh: until the old instance drains, its bodies and the new one's may hold up
    // to twice max_replay_memory between them — once per reload, for as long as a request lasts.
    const shared =
      api.inherited instanceof RetrySharedState
        ? api.inherited
        : new RetrySharedState(
            budgetConfig === undefined ? undefined : new RetryBudget(budgetConfig.ratio, budgetConfig.min_per_second),
            new ReplayMemory(parseSize(config.max_replay_memory)),
          );
    const { budget, replayMemory } = shared;
    const warnings = new RepeatedWarnings(logger);
    const replayMemoryFullMessage =
      `replay memory is full: a request body was streamed once instead of being kept to be sent again, so its request is retried only on connect errors; ` +
      `raise max_replay_memory (now ${config.max_replay_memory}) if the process can spare it, or lower max_replay_body (now ${config.max_replay_body}) so that more bodies fit`;

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

    function warnReplayMemoryFull(): void {
      // Once per request while it lasts (an attack, a slow backend): RepeatedWarnings keeps it to a line per window.
      warnings.warn('replay-memory-full', '', { held: replayMemory.held, max_replay_memory: config.max_replay_memory }, replayMemoryFullMessage);
    }

    /**
     * Replay memory for `ctx`'s streamed body: its Content-Length, or for a
     * body of unknown length max_replay_body or what is left when that is
     * less. Undefined when the body is to stream once: declared larger than
     * max_replay_body, or no room left (warned).
     */
    function reserveReplayMemory(ctx: RequestContext): ReplayReservation | undefined {
      const declared = declaredLength(ctx.headers['content-length']);
      if (declared !== undefined && declared > maxReplay) return undefined;
      const reservation = declared === undefined ? replayMemory.reserveUpTo(maxReplay) : replayMemory.reserve(declared);
      if (reservation === undefined) warnReplayMemoryFull();
      return reservation;
    }

    /**
     * Reads `ctx`'s body into memory, at most the reserved bytes, and shrinks
     * the reservation to what is held. False when the body was longer: it
     * streams once, and the reservation is given back.
     */
    async function bufferWithin(ctx: RequestContext, reservation: ReplayReservation): Promise<boolean> {
      const reserved = reservation.bytes;
      const buffered = await ctx.bufferBody(reserved);
      if (buffered !== undefined) {
        replayMemory.shrink(reservation, buffered.length);
        return true;
      }
      // What was read before the limit is sent ahead of the rest, as the backend takes it: in flight, not kept for replay.
      replayMemory.release(reservation);
      // Only a body of unknown length gets less than max_replay_body: with more room it might have been kept.
      if (reserved < maxReplay) warnReplayMemoryFull();
      return false;
    }

    async function handleBuffered(ctx: RequestContext, next: Next): Promise<void> {
      const reservation = reserveReplayMemory(ctx);
      if (reservation === undefined) return tryAndRetry(ctx, next, true, false);
      try {
        return await tryAndRetry(ctx, next, true, await bufferWithin(ctx, reservation));
      } finally {
        // Every way out: an answer, a failure, a client gone, a body that never arrived whole.
        replayMemory.release(reservation);
      }
    }

    /** Tries, and tries again while the policy and the budget allow. */
    async function tryAndRetry(ctx: RequestContext, next: Next, methodRetryable: boolean, replayable: boolean): Promise<void> {
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
        const body = ctx.body;
        if (body === null) return tryAndRetry(ctx, next, methodRetryable, true);
        // Already in memory (the core reads small bodies whole): max_replay_body is still the policy; no replay memory is spent.
        if (Buffer.isBuffer(body)) return tryAndRetry(ctx, next, methodRetryable, body.length <= maxReplay);
        // Only methods retried past connect errors need the body again: the others stream it once.
        if (!methodRetryable) return tryAndRetry(ctx, next, false, false);
        return handleBuffered(ctx, next);
      },
      handOver(): unknown {
        return shared;
      },
      close(): void {
        // Reports what the open window counted.
        warnings.flush();
      },
    };
  },
});
