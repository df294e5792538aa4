/**
 * A pool as one configuration generation sees it: its members (backend +
 * weight), its strategy instance, and the selection step every request ends
 * with.
 */
import { LbError } from '../errors.js';
import type { Candidate, PoolView, StrategyInstance } from '../plugin/types.js';
import type { PoolConfig } from '../config/types.js';
import type { Backend } from './backend.js';
import type { BackendRegistry } from './backend-registry.js';

/** A backend as a member of one pool: the Candidate strategies see. */
export class PoolMember implements Candidate {
  readonly url: string;
  constructor(
    readonly backend: Backend,
    readonly weight: number,
  ) {
    this.url = backend.url;
  }
  get activeConnections(): number {
    return this.backend.active;
  }
  get healthy(): boolean {
    return this.backend.state !== 'down';
  }
}

/** What selection needs to know about the request (implemented by the request context). */
export interface SelectionRequest {
  readonly pinned: string | undefined;
  /** Backends kept out by a plugin (circuit breaker): never chosen. */
  readonly excluded: ReadonlySet<string> | undefined;
  /** Backends earlier attempts of this request went to: avoided while another is available. */
  readonly tried: readonly string[] | undefined;
}

export class PoolRuntime implements PoolView {
  readonly name: string;
  readonly backends: readonly PoolMember[];
  #healthy: PoolMember[] = [];
  #healthyVersion = -1;

  constructor(
    readonly config: PoolConfig,
    readonly strategy: StrategyInstance,
    private readonly registry: BackendRegistry,
  ) {
    this.name = config.name;
    this.backends = config.backends.map(
      (b) => new PoolMember(registry.acquire(b.url, { connectTimeout: config.connectTimeout, maxConnections: config.maxConnections }), b.weight),
    );
  }

  /**
   * Healthy members in config order. The same array instance is returned
   * until some backend's health changes, so strategies may cache derived
   * structures (hash rings) by identity.
   */
  healthyMembers(): readonly PoolMember[] {
    if (this.#healthyVersion !== this.registry.healthVersion) {
      this.#healthyVersion = this.registry.healthVersion;
      const healthy: PoolMember[] = [];
      for (let i = 0; i < this.backends.length; i++) {
        if (this.backends[i]!.healthy) healthy.push(this.backends[i]!);
      }
      this.#healthy = healthy;
    }
    return this.#healthy;
  }

  /** Chooses the backend for one attempt, or undefined when none can take it. */
  select(request: SelectionRequest, ctx: Parameters<StrategyInstance['pick']>[1]): PoolMember | undefined {
    const healthy = this.healthyMembers();
    const { pinned, excluded, tried } = request;
    if (pinned !== undefined && (tried === undefined || !tried.includes(pinned))) {
      for (let i = 0; i < healthy.length; i++) {
        const m = healthy[i]!;
        if (m.url === pinned && (excluded === undefined || !excluded.has(m.url))) return m;
      }
    }
    let candidates: readonly PoolMember[] = healthy;
    if (excluded !== undefined || tried !== undefined) {
      candidates = filterMembers(healthy, excluded, tried);
      // Every healthy backend was tried already: trying one again beats failing.
      if (candidates.length === 0 && tried !== undefined) candidates = filterMembers(healthy, excluded, undefined);
    }
    if (candidates.length === 0) return undefined;
    let picked: Candidate | undefined;
    try {
      picked = this.strategy.pick(candidates, ctx);
    } catch (err) {
      // Named here: otherwise the innermost middleware would be blamed for it.
      throw new LbError('LB_ERR_PLUGIN', `strategy "${this.config.strategy.name}" of pool "${this.name}" failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
    }
    if (picked === undefined) return undefined;
    if (!(picked instanceof PoolMember)) {
      throw new LbError('LB_ERR_PLUGIN', `strategy of pool "${this.name}" returned something that is not one of its candidates`);
    }
    return picked;
  }

  release(): void {
    for (const member of this.backends) this.registry.release(member.backend);
  }
}

function filterMembers(
  members: readonly PoolMember[],
  excluded: ReadonlySet<string> | undefined,
  tried: readonly string[] | undefined,
): PoolMember[] {
  const out: PoolMember[] = [];
  for (let i = 0; i < members.length; i++) {
    const url = members[i]!.url;
    if (excluded !== undefined && excluded.has(url)) continue;
    if (tried !== undefined && tried.includes(url)) continue;
    out.push(members[i]!);
  }
  return out;
}
