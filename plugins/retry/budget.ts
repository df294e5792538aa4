/**
 * A retry budget, as in Linkerd and Envoy: over the last
 * RETRY_BUDGET_WINDOW_S seconds, retries may number at most `ratio` × the
 * requests seen, plus `minPerSecond` for each second of the window so that a
 * service with little traffic can still retry. When a backend fails for
 * everyone, per-request attempts alone would multiply its load by
 * `attempts`; the budget caps the extra load at `ratio`.
 *
 * Pure: time comes in as milliseconds on every call. Counts live in
 * one-second slots of a ring, with running totals, so a call costs a few
 * integer operations and allocates nothing.
 */

/** Seconds of history the budget weighs (Linkerd's default TTL). */
export const RETRY_BUDGET_WINDOW_S = 10;

export class RetryBudget {
  readonly #requests = new Float64Array(RETRY_BUDGET_WINDOW_S);
  readonly #retries = new Float64Array(RETRY_BUDGET_WINDOW_S);
  #requestTotal = 0;
  #retryTotal = 0;
  /** The second (ms / 1000, floored) the newest slot counts; -Infinity before the first call. */
  #second = Number.NEGATIVE_INFINITY;
  /** Retries the window allows whatever the traffic. */
  readonly #reserve: number;

  /**
   * @param ratio retries allowed per request (0.2: one retry per five requests)
   * @param minPerSecond retries allowed per second of the window on top of the ratio
   */
  constructor(
    readonly ratio: number,
    readonly minPerSecond: number,
  ) {
    this.#reserve = minPerSecond * RETRY_BUDGET_WINDOW_S;
  }

  /** Counts one request (a first try, not a retry) at `nowMs`. */
  recordRequest(nowMs: number): void {
    const slot = this.#advance(nowMs);
    this.#requests[slot]!++;
    this.#requestTotal++;
  }

  /** Whether one more retry fits at `nowMs`; when it does, it is counted as spent. */
  tryRetry(nowMs: number): boolean {
    const slot = this.#advance(nowMs);
    if (this.#retryTotal + 1 > this.ratio * this.#requestTotal + this.#reserve) return false;
    this.#retries[slot]!++;
    this.#retryTotal++;
    return true;
  }

  /** Requests and retries counted in the window ending at the last call. */
  get counts(): { requests: number; retries: number } {
    return { requests: this.#requestTotal, retries: this.#retryTotal };
  }

  /** Moves the window to `nowMs`'s second, emptying the slots it leaves behind; returns the slot for now. */
  #advance(nowMs: number): number {
    const second = Math.floor(nowMs / 1000);
    // A clock that steps back counts into the newest slot until it catches up.
    if (second > this.#second) {
      const passed = Math.min(second - this.#second, RETRY_BUDGET_WINDOW_S);
      for (let i = 0; i < passed; i++) {
        const slot = (((second - i) % RETRY_BUDGET_WINDOW_S) + RETRY_BUDGET_WINDOW_S) % RETRY_BUDGET_WINDOW_S;
        this.#requestTotal -= this.#requests[slot]!;
        this.#retryTotal -= this.#retries[slot]!;
        this.#requests[slot] = 0;
        this.#retries[slot] = 0;
      }
      this.#second = second;
    }
    return ((this.#second % RETRY_BUDGET_WINDOW_S) + RETRY_BUDGET_WINDOW_S) % RETRY_BUDGET_WINDOW_S;
  }
}
