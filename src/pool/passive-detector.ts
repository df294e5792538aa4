/**
 * Passive failure detection: consecutive connect failures or resets on real
 * traffic take a backend out of rotation at once. Active health checks bring
 * it back; a pool without them lets it back after `passive_cooldown`.
 */
import type { LbError } from '../errors.js';
import { isBackendFault } from '../proxy/upstream-errors.js';
import type { UpstreamExchange } from '../proxy/upstream-exchange.js';
import type { BackendRegistry } from './backend-registry.js';

export class PassiveDetector {
  readonly #timers = new Set<NodeJS.Timeout>();

  constructor(private readonly registry: BackendRegistry) {}

  readonly onFailure = (exchange: UpstreamExchange, err: LbError): void => {
    if (!isBackendFault(err)) return;
    const backend = exchange.backend;
    const pool = exchange.ctx.pool.config;
    backend.passiveFailures++;
    if (pool.passiveFailures === 0 || backend.passiveFailures < pool.passiveFailures || backend.state === 'down') return;
    const cause = (err.cause as { code?: string; message?: string } | undefined) ?? {};
    this.registry.setState(
      backend,
      'down',
      `${backend.passiveFailures} consecutive failures on live traffic (last: ${cause.code ?? cause.message ?? err.code})`,
    );
    if (pool.health === undefined) {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        if (backend.state === 'down') {
          backend.passiveFailures = 0;
          this.registry.setState(backend, 'unknown', `back in rotation after passive cooldown of ${pool.passiveCooldown}ms`);
        }
      }, pool.passiveCooldown);
      timer.unref();
      this.#timers.add(timer);
    }
  };

  close(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }
}
