/**
 * circuit-breaker: stops sending requests to a backend that keeps failing.
 *
 * ```toml
 * [[pipeline]]
 * plugin = "circuit-breaker"
 * failure_ratio = 0.5   # open when this share of the last `window` requests failed
 * window = 20
 * min_requests = 20     # judge only once this many requests are in the window
 * open_for = "10s"      # then half-open: one probe request
 * ```
 *
 * Per backend (keyed by URL) a circuit is:
 * - closed: requests flow; the outcomes of the last `window` requests are
 *   kept, and once at least `min_requests` of them are in (values above
 *   `window` act as `window`) and `failure_ratio` of them failed, it opens;
 * - open: the backend is kept out of selection for `open_for`; a request
 *   whose pool has every backend open is answered 503 with Retry-After;
 * - half-open: exactly one probe request may go to the backend (others still
 *   avoid it); success closes the circuit with an empty window, failure opens
 *   it again for `open_for`.
 *
 * A failure is a connect error, a reset, a protocol error or a timeout
 * (a thrown upstream error, status ≥ 500) or a backend response with status
 * ≥ 500. Answers that did not come from a backend are not counted, nor is a
 * connection this process could not open for lack of its own resources
 * (LB_ERR_LOCAL_RESOURCES: file descriptors, memory, local ports) — that
 * shortage would open every circuit at once.
 *
 * With retry before circuit-breaker in the pipeline, every try is recorded;
 * with circuit-breaker first, only the last try of each request is.
 * Circuits survive a reload that does not change this plugin's table.
 */
import {
  definePlugin,
  durationSchema,
  LbError,
  parseDuration,
  PerBackendState,
  type ErrorCode,
  type MiddlewareInstance,
  type Next,
  type PluginApi,
  type RequestContext,
} from '../src/index.js';

export interface CircuitBreakerConfig {
  readonly failure_ratio: number;
  readonly window: number;
  readonly min_requests: number;
  readonly open_for: string;
}

export type CircuitStatus = 'closed' | 'open' | 'half-open';

/** What a circuit says to one request: go, go as the half-open probe, or stay away. */
export type Admission = 'allow' | 'probe' | 'deny';

export interface CircuitOptions {
  readonly window: number;
  readonly failureRatio: number;
  readonly minRequests: number;
  readonly openForMs: number;
}

/**
 * One backend's circuit: a pure state machine. Time comes in as `now`
 * (milliseconds) on every call, so tests drive it with any clock.
 */
export class CircuitState {
  status: CircuitStatus = 'closed';
  /** When the circuit last opened (ms); meaningful while open. */
  openedAt = 0;
  private probing = false;
  private readonly outcomes: Uint8Array;
  private next = 0;
  private count = 0;
  private failures = 0;
  private readonly minRequests: number;

  constructor(private readonly options: CircuitOptions) {
    this.outcomes = new Uint8Array(options.window);
    this.minRequests = Math.min(options.minRequests, options.window);
  }

  /** Requests in the window and how many of them failed. */
  get recorded(): { count: number; failures: number } {
    return { count: this.count, failures: this.failures };
  }

  /** Whether a request may go to this backend now. Claims the probe when it answers 'probe'. */
  admit(now: number): Admission {
    if (this.status === 'closed') return 'allow';
    if (this.status === 'open') {
      if (now - this.openedAt < this.options.openForMs) return 'deny';
      this.status = 'half-open';
    }
    if (this.probing) return 'deny';
    this.probing = true;
    return 'probe';
  }

  /** The outcome of a request admitted with 'allow'. Ignored unless closed (late answers from before it opened). */
  record(failed: boolean, now: number): void {
    if (this.status !== 'closed') return;
    const window = this.outcomes.length;
    if (this.count === window) this.failures -= this.outcomes[this.next]!;
    else this.count++;
    const bit = failed ? 1 : 0;
    this.outcomes[this.next] = bit;
    this.failures += bit;
    this.next = this.next + 1 === window ? 0 : this.next + 1;
    if (this.count >= this.minRequests && this.failures >= this.options.failureRatio * this.count) this.open(now);
  }

  /** The outcome of the probe: success closes the circuit with an empty window, failure opens it again. */
  recordProbe(failed: boolean, now: number): void {
    this.probing = false;
    if (failed) this.open(now);
    else this.close();
  }

  /** The probe did not reach this backend after all (another was chosen, or the request ended early). */
  releaseProbe(): void {
    this.probing = false;
  }

  /** Milliseconds until this circuit lets a request through (0 when it does now). */
  waitMs(now: number): number {
    if (this.status === 'open') return Math.max(0, this.openedAt + this.options.openForMs - now);
    return 0;
  }

  private open(now: number): void {
    this.status = 'open';
    this.openedAt = now;
    this.probing = false;
  }

  private close(): void {
    this.status = 'closed';
    this.outcomes.fill(0);
    this.next = 0;
    this.count = 0;
    this.failures = 0;
  }
}

/** Thrown errors that do not say anything about a backend's health. */
const NOT_BACKEND_FAILURES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'LB_ERR_NO_BACKEND',
  'LB_ERR_PLUGIN',
  'LB_ERR_CLIENT_GONE',
  'LB_ERR_BAD_REQUEST',
  'LB_ERR_BODY_TOO_LARGE',
  'LB_ERR_LOCAL_RESOURCES',
]);

/** Whether an error thrown by next() counts against the backend that was tried. */
export function isBackendFailure(err: unknown): boolean {
  return err instanceof LbError && err.status >= 500 && !NOT_BACKEND_FAILURES.has(err.code);
}

export const schema = {
  type: 'object',
  additionalProperties: false,
  description: 'Per-backend circuit breaker: a backend that keeps failing is skipped for a while, then probed.',
  properties: {
    failure_ratio: {
      type: 'number',
      exclusiveMinimum: 0,
      maximum: 1,
      default: 0.5,
      description: 'Open the circuit when at least this share (0 < ratio ≤ 1) of the requests in the window failed.',
    },
    window: {
      type: 'integer',
      minimum: 1,
      maximum: 10_000,
      default: 20,
      description: 'How many of the latest requests to each backend are judged.',
    },
    min_requests: {
      type: 'integer',
      minimum: 1,
      default: 20,
      description: 'Judge a backend only once this many requests are in its window, so that a few early failures do not open it; a value above `window` acts as `window`.',
    },
    open_for: durationSchema('How long an open circuit keeps its backend out of selection before letting one probe request through.', '10s'),
  },
};

const OPEN_BODY = 'Service Unavailable: every backend of this pool has its circuit open.\n';
const DONE: Promise<void> = Promise.resolve();

/**
 * Circuits by backend URL, and the URLs whose circuit is not closed. Handed
 * from one generation to the next as one object: the old generation's
 * in-flight requests keep recording into it while it drains. A backend the
 * configuration no longer lists loses its circuit (PerBackendState).
 */
class Circuits extends PerBackendState<CircuitState> {
  /** When empty, handle() skips the pool scan. */
  readonly tripped = new Set<string>();

  override release(instance: object): string[] {
    const dropped = super.release(instance);
    for (const url of dropped) this.tripped.delete(url);
    return dropped;
  }
}

export default definePlugin({
  name: 'circuit-breaker',
  kind: 'middleware',
  description: 'Takes failing backends out of selection for a while, then probes them.',
  schema,
  create(config: CircuitBreakerConfig, api: PluginApi): MiddlewareInstance {
    const options: CircuitOptions = {
      window: config.window,
      failureRatio: config.failure_ratio,
      minRequests: config.min_requests,
      openForMs: parseDuration(config.open_for),
    };
    const state = api.inherited instanceof Circuits ? api.inherited : new Circuits();
    const circuits = state.byUrl;
    const tripped = state.tripped;
    const clock = api.clock;
    const logger = api.logger;

    function circuitOf(url: string): CircuitState {
      let circuit = circuits.get(url);
      if (circuit === undefined) {
        circuit = new CircuitState(options);
        circuits.set(url, circuit);
      }
      return circuit;
    }

    function settle(url: string, failed: boolean, probe: boolean): void {
      const circuit = circuitOf(url);
      const before = circuit.status;
      const now = clock.now();
      if (probe) circuit.recordProbe(failed, now);
      else circuit.record(failed, now);
      const after = circuit.status;
      if (after === before) return;
      if (after === 'closed') {
        tripped.delete(url);
        logger.info({ backend: url }, 'circuit closed: probe succeeded');
      } else {
        tripped.add(url);
        logger.warn({ backend: url, open_for: config.open_for }, before === 'closed' ? 'circuit opened: too many failures' : 'circuit opened again: probe failed');
      }
    }

    async function forward(ctx: RequestContext, next: Next, probes: string[] | undefined): Promise<void> {
      try {
        await next();
      } catch (err) {
        const backend = ctx.backend;
        if (backend !== undefined && isBackendFailure(err)) finish(backend.url, true, probes);
        else finish(undefined, false, probes);
        throw err;
      }
      const backend = ctx.backend;
      const response = ctx.response;
      if (backend !== undefined && response !== undefined && response.source === 'backend') {
        finish(backend.url, response.status >= 500, probes);
      } else {
        finish(undefined, false, probes);
      }
    }

    /** Records an outcome for `url` (undefined: nothing to record) and frees probes this request did not use. */
    function finish(url: string | undefined, failed: boolean, probes: string[] | undefined): void {
      let probed = false;
      if (probes !== undefined) {
        for (let i = 0; i < probes.length; i++) {
          if (probes[i] === url) probed = true;
          else circuits.get(probes[i]!)?.releaseProbe();
        }
      }
      if (url !== undefined) settle(url, failed, probed);
    }

    const instance: MiddlewareInstance = {
      handle(ctx: RequestContext, next: Next): Promise<void> {
        if (tripped.size === 0) return forward(ctx, next, undefined);
        const backends = ctx.pool.backends;
        const now = clock.now();
        let probes: string[] | undefined;
        let excluded = 0;
        let waitMs = Infinity;
        for (let i = 0; i < backends.length; i++) {
          const url = backends[i]!.url;
          if (!tripped.has(url)) continue;
          const circuit = circuits.get(url)!;
          const admission = circuit.admit(now);
          if (admission === 'deny') {
            ctx.exclude(url);
            excluded++;
            waitMs = Math.min(waitMs, circuit.waitMs(now));
          } else if (admission === 'probe') {
            (probes ??= []).push(url);
          }
        }
        if (excluded > 0 && excluded === backends.length) {
          ctx.respond(503, OPEN_BODY, {
            'retry-after': String(Math.max(1, Math.ceil(waitMs / 1000))),
            'content-type': 'text/plain; charset=utf-8',
          });
          return DONE;
        }
        return forward(ctx, next, probes);
      },
      handOver(): unknown {
        return state;
      },
      close(): void {
        state.release(instance);
      },
    };
    state.use(instance, api);
    return instance;
  },
});
