/**
 * Passive failure detection: consecutive connect failures, resets or invalid
 * responses on real traffic (`isBackendFault`) take a backend out of
 * rotation at once. Active health checks bring it back; a backend no health
 * table checks comes back after `passive_cooldown`, on probation: its next
 * failure takes it out again.
 *
 * A connection this process could not open for lack of its own resources
 * (EMFILE…, LB_ERR_LOCAL_RESOURCES) is not counted, nor does it break a run:
 * it says nothing about the backend, and counting it would take every
 * backend out at once during a local overload.
 *
 * Back in rotation through active checks, a backend counts its failures on
 * traffic afresh: the checks that passed in between vouched for it, so one
 * more failure is not "`passive_failures` in a row".
 *
 * In a cluster each worker counts its own traffic's failures and takes the
 * backend out locally at once; it reports that to the primary (`report`),
 * which makes it cluster-wide (`takeDown`) and runs the cooldown, so there is
 * one cooldown per backend, not one per worker.
 */
import type { LbError } from '../errors.js';
import { isBackendFault } from '../proxy/upstream-errors.js';
import type { UpstreamExchange } from '../proxy/upstream-exchange.js';
import type { Backend, StateChange } from './backend.js';
import type { BackendRegistry } from './backend-registry.js';
import type { PoolConfig } from '../config/types.js';

/** Where a backend taken down on this process's traffic is reported when another process runs its cooldown. */
export type PassiveDownReport = (backend: Backend, pool: PoolConfig, reason: string) => void;

export class PassiveDetector {
  readonly #timers = new Set<NodeJS.Timeout>();

  /**
   * @param activelyChecked whether active health checks watch a backend (then
   * they, not the cooldown, bring it back — whichever pool the failing request was for).
   */
  constructor(
    private readonly registry: BackendRegistry,
    private readonly activelyChecked: (backend: Backend) => boolean = () => false,
    /** When set, the cooldown is not run here: the verdict goes to `report` (a cluster worker's primary). */
    private readonly report?: PassiveDownReport,
  ) {
    registry.on('change', this.#onChange);
  }

  /**
   * Active checks (here, or a cluster primary's, told to this worker) brought
   * a backend back: its count starts over. A return after the cooldown keeps
   * the probation count the cooldown left (or, in a worker, the count that
   * took it out): no check vouched for it.
   */
  readonly #onChange = ({ backend, from, to }: StateChange): void => {
    if (from === 'down' && to !== 'down' && this.activelyChecked(backend)) backend.passiveFailures = 0;
  };

  readonly onFailure = (exchange: UpstreamExchange, err: LbError): void => {
    if (!isBackendFault(err)) return;
    const backend = exchange.backend;
    const pool = exchange.ctx.pool.config;
    backend.passiveFailures++;
    if (pool.passiveFailures === 0 || backend.passiveFailures < pool.passiveFailures || backend.state === 'down') return;
    const cause = (err.cause as { code?: string; message?: string } | undefined) ?? {};
    const what = cause.code ?? cause.message ?? err.code;
    const count = backend.passiveFailures;
    const reason = count === 1 ? `${what} on live traffic` : `${what} on live traffic (${count} in a row)`;
    this.registry.setState(backend, 'down', reason);
    if (this.report !== undefined) this.report(backend, pool, reason);
    else this.#cooldown(backend, pool);
  };

  /** A backend another process took down on its traffic (a cluster worker's report): down here too, then the cooldown. */
  takeDown(backend: Backend, pool: PoolConfig, reason: string): void {
    if (backend.state === 'down') return;
    this.registry.setState(backend, 'down', reason);
    this.#cooldown(backend, pool);
  }

  #cooldown(backend: Backend, pool: PoolConfig): void {
    if (pool.health === undefined && !this.activelyChecked(backend)) {
      const threshold = pool.passiveFailures;
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        if (backend.state === 'down') {
          // Probation: one more failure before any success takes it out again,
          // instead of `passive_failures` more failed requests per cooldown.
          backend.passiveFailures = threshold - 1;
          this.registry.setState(backend, 'unknown', `back in rotation after passive cooldown of ${pool.passiveCooldown}ms`);
        }
      }, pool.passiveCooldown);
      timer.unref();
      this.#timers.add(timer);
    }
  }

  close(): void {
    this.registry.off('change', this.#onChange);
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }
}
