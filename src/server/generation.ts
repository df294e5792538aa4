/**
 * A configuration generation: everything built from one validated lb.toml —
 * plugin instances, pools, routes with their composed pipelines. Built
 * completely beside the running one; if anything fails while building, what
 * was created is closed again and the running generation is untouched.
 * After a swap the old generation drains (requests in flight finish on it),
 * then its plugins are closed and its backends released.
 */
import type { LbConfig, PluginRef, PoolConfig } from '../config/types.js';
import { compose, type Handler, type NamedMiddleware } from '../pipeline/compose.js';
import type { ProxyContext } from '../pipeline/context.js';
import { Router } from '../pipeline/router.js';
import type {
  HealthInstance,
  Logger,
  MiddlewareInstance,
  PluginApi,
  PluginInstance,
  StrategyInstance,
} from '../plugin/types.js';
import type { BackendRegistry } from '../pool/backend-registry.js';
import { PoolRuntime } from '../pool/pool.js';
import type { Forwarder } from '../proxy/forward.js';
import { ForwardedHeaders } from '../proxy/forwarded-headers.js';

export interface RouteTarget {
  readonly name: string;
  readonly pool: PoolRuntime;
  readonly handler: Handler<ProxyContext>;
}

interface CreatedPlugin {
  readonly ref: PluginRef;
  readonly instance: PluginInstance;
}

/** What a running generation can hand over to the next (see Generation.predecessors). */
interface Predecessors {
  readonly byIdentity: Map<string, CreatedPlugin[]>;
  readonly reserved: Set<CreatedPlugin>;
}

/** Every plugin a configuration names: strategies, health checkers, global and route pipelines. */
function* pluginRefs(config: LbConfig): Generator<PluginRef> {
  for (const pool of Object.values(config.pools)) {
    yield pool.strategy;
    if (pool.health) yield pool.health.checker;
  }
  yield* config.pipeline;
  for (const route of config.routes) yield* route.pipeline;
}

/** An instance and its successor match on these: the same plugin module and options at the same key. */
function handOverKey(ref: PluginRef): string {
  return `${ref.identity}\u0000${ref.keyPath}`;
}

/**
 * A plugin's `create()` threw while a generation was being built. Carries
 * where in lb.toml the plugin is configured, so the error can be reported
 * at file:line:col like any other config problem.
 */
export class PluginStartError extends Error {
  constructor(
    readonly ref: PluginRef,
    /** Key path of the key that names the plugin in lb.toml: `pipeline[0].plugin`, `pools.web.strategy`, `pools.web.health.checker`. */
    readonly keyPath: string,
    cause: unknown,
  ) {
    super(`plugin "${ref.name}" failed to start: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = 'PluginStartError';
  }

  /** `routes[0].pipeline[1].plugin` → `['routes', '0', 'pipeline', '1', 'plugin']`, for the TOML locator. */
  get segments(): string[] {
    return this.keyPath.replace(/\[(\d+)\]/g, '.$1').split('.').filter((s) => s !== '');
  }
}

export interface GenerationDeps {
  readonly registry: BackendRegistry;
  readonly logger: Logger & { child(bindings: object): Logger };
  readonly forward: Forwarder;
  /** How long a plugin's create() / close() may take (default PLUGIN_DEADLINES). */
  readonly pluginDeadlines?: PluginDeadlines;
}

export interface PluginDeadlines {
  /** Past this, a create() that has not settled fails the build (its instance is closed if it comes later). */
  readonly createMs: number;
  /** Past this, a close() that has not settled is logged and no longer waited for. */
  readonly closeMs: number;
}

/**
 * A plugin that hangs in create() must not stall every later reload (they
 * run one at a time), nor one that hangs in close() the retirement of its
 * generation or shutdown.
 */
export const PLUGIN_DEADLINES: PluginDeadlines = { createMs: 10_000, closeMs: 5_000 };

const TIMED_OUT = Symbol('timed out');

/** `work`, or TIMED_OUT if it has not settled within `ms`. */
async function withDeadline<T>(work: T | Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  if (typeof (work as { then?: unknown } | undefined)?.then !== 'function') return work;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<typeof TIMED_OUT>((resolve) => (timer = setTimeout(resolve, ms, TIMED_OUT)));
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}

const clock = { now: () => Date.now() };

/** The hook each kind of plugin instance must have. */
const HOOKS = {
  middleware: { name: 'handle', signature: 'handle(ctx, next)' },
  strategy: { name: 'pick', signature: 'pick(candidates, ctx)' },
  health: { name: 'check', signature: 'check(target, signal)' },
} as const;

export class Generation {
  readonly loadedAt = new Date();
  readonly router: Router<RouteTarget>;
  readonly pools: ReadonlyMap<string, PoolRuntime>;
  readonly forwarded: ForwardedHeaders;
  /** Health checker instance per pool that has active checks. */
  readonly healthCheckers: ReadonlyMap<string, HealthInstance>;
  inflight = 0;
  #retired = false;
  #drained: (() => void) | undefined;
  #closed = false;

  private constructor(
    readonly id: number,
    readonly config: LbConfig,
    private readonly plugins: readonly CreatedPlugin[],
    pools: Map<string, PoolRuntime>,
    routes: { config: LbConfig['routes'][number]; target: RouteTarget }[],
    healthCheckers: Map<string, HealthInstance>,
    private readonly deps: GenerationDeps,
  ) {
    this.pools = pools;
    this.router = new Router(routes);
    this.forwarded = new ForwardedHeaders(config.server.trustedProxies, config.server.forwardedHeader);
    this.healthCheckers = healthCheckers;
  }

  static async build(id: number, config: LbConfig, deps: GenerationDeps, previous?: Generation): Promise<Generation> {
    const created: CreatedPlugin[] = [];
    const pools = new Map<string, PoolRuntime>();
    const predecessors = previous?.predecessors(config) ?? { byIdentity: new Map<string, CreatedPlugin[]>(), reserved: new Set<CreatedPlugin>() };
    const deadlines = deps.pluginDeadlines ?? PLUGIN_DEADLINES;
    const backendUrls: ReadonlySet<string> = new Set(Object.values(config.pools).flatMap((pool) => pool.backends.map((b) => b.url)));
    // keyPath: the key that names the plugin (`plugin`, `strategy`, `checker`), where a failure is reported.
    const instantiate = async <I extends PluginInstance>(ref: PluginRef, keyPath = `${ref.keyPath}.plugin`): Promise<I> => {
      const api: PluginApi = {
        logger: deps.logger.child({ plugin: ref.name, at: ref.keyPath }),
        clock,
        configDir: config.dir,
        pluginName: ref.name,
        backendUrls,
        inherited: previous?.handOver(predecessors, ref),
      };
      let outcome: I | typeof TIMED_OUT;
      const pending = Promise.resolve().then(() => ref.definition.create(ref.options, api) as unknown as I);
      try {
        outcome = await withDeadline(pending, deadlines.createMs);
      } catch (err) {
        throw new PluginStartError(ref, keyPath, err);
      }
      if (outcome === TIMED_OUT) {
        // Should it finish after all, nothing will use it: close it then.
        pending.then((late) => closePlugins([{ ref, instance: late }], deps.logger, deadlines.closeMs), () => {});
        throw new PluginStartError(ref, keyPath, new Error(`create() did not finish within ${deadlines.createMs}ms`));
      }
      const hook = HOOKS[ref.definition.kind];
      if (typeof (outcome as unknown as Record<string, unknown> | undefined)?.[hook.name] !== 'function') {
        if (outcome !== null && typeof outcome === 'object') created.push({ ref, instance: outcome });
        throw new PluginStartError(ref, keyPath, new Error(`create() must return an object with a ${hook.signature} function`));
      }
      created.push({ ref, instance: outcome });
      return outcome;
    };
    try {
      const healthCheckers = new Map<string, HealthInstance>();
      for (const pool of Object.values(config.pools)) {
        const strategyAt = pool.strategy.keyPath.endsWith('.strategy') ? `${pool.strategy.keyPath}.plugin` : `${pool.strategy.keyPath}.strategy`;
        const strategy = await instantiate<StrategyInstance>(pool.strategy, strategyAt);
        if (pool.health) {
          healthCheckers.set(pool.name, await instantiate<HealthInstance>(pool.health.checker, `${pool.health.checker.keyPath}.checker`));
        }
        pools.set(pool.name, new PoolRuntime(pool, strategy, deps.registry));
      }
      const global: NamedMiddleware[] = [];
      for (const ref of config.pipeline) global.push({ name: ref.name, instance: await instantiate<MiddlewareInstance>(ref) });
      const routes: { config: LbConfig['routes'][number]; target: RouteTarget }[] = [];
      const routeConfigs =
        config.routes.length > 0 ? config.routes : [implicitRoute(Object.values(config.pools)[0]!)];
      for (const route of routeConfigs) {
        const layers = [...global];
        for (const ref of route.pipeline) layers.push({ name: ref.name, instance: await instantiate<MiddlewareInstance>(ref) });
        routes.push({
          config: route,
          target: { name: route.name, pool: pools.get(route.pool)!, handler: compose(layers, deps.forward) },
        });
      }
      return new Generation(id, config, created, pools, routes, healthCheckers, deps);
    } catch (err) {
      await closePlugins(created, deps.logger, deadlines.closeMs);
      for (const pool of pools.values()) pool.release();
      throw err;
    }
  }

  /**
   * Running instances that can hand state over, by plugin identity (same
   * name and options); `reserved`: those that `next` has a successor for at
   * the same key path, which no other new instance may take.
   */
  private predecessors(next: LbConfig): Predecessors {
    const byIdentity = new Map<string, CreatedPlugin[]>();
    const reserved = new Set<CreatedPlugin>();
    const successors = new Set<string>();
    for (const ref of pluginRefs(next)) successors.add(handOverKey(ref));
    for (const created of this.plugins) {
      if (typeof created.instance.handOver !== 'function') continue;
      let list = byIdentity.get(created.ref.identity);
      if (!list) byIdentity.set(created.ref.identity, (list = []));
      list.push(created);
      if (successors.has(handOverKey(created.ref))) reserved.add(created);
    }
    return { byIdentity, reserved };
  }

  /**
   * The state a running instance hands to `ref`'s new instance: one with the
   * same identity and the same module (after a plugin file is edited, its
   * new code does not receive the old code's objects), the one at the same
   * key path when there is one — pools are named, so a pool's strategy keeps
   * its own state when pools with alike strategies are reordered or one is
   * inserted before it — else one whose key path the new configuration no
   * longer holds (a renamed pool). Each running instance hands over at most
   * once per build, and only when it has a successor.
   */
  private handOver(predecessors: Predecessors, ref: PluginRef): unknown {
    const list = predecessors.byIdentity.get(ref.identity);
    if (list === undefined) return undefined;
    let i = list.findIndex((p) => p.ref.definition === ref.definition && p.ref.keyPath === ref.keyPath);
    if (i === -1) i = list.findIndex((p) => p.ref.definition === ref.definition && !predecessors.reserved.has(p));
    if (i === -1) return undefined;
    const { instance } = list.splice(i, 1)[0]!;
    try {
      return instance.handOver!();
    } catch (err) {
      this.deps.logger.warn(
        { plugin: ref.name, at: ref.keyPath, err },
        `plugin "${ref.name}" at ${ref.keyPath}: handOver() failed, its next instance starts without inherited state`,
      );
      return undefined;
    }
  }

  enter(): void {
    this.inflight++;
  }

  leave(): void {
    if (--this.inflight === 0 && this.#retired) this.#drained?.();
  }

  /**
   * Waits for in-flight requests, then closes plugins and releases backends.
   * A request that never finishes (a plugin that hangs, a client that never
   * reads) must not keep a replaced generation alive forever: past
   * `maxWaitMs` the plugins are closed anyway and what is left is logged.
   */
  async retire(maxWaitMs = this.config.server.shutdownGrace): Promise<void> {
    this.#retired = true;
    if (this.inflight > 0) {
      let timer: NodeJS.Timeout | undefined;
      const drained = new Promise<boolean>((resolve) => (this.#drained = () => resolve(true)));
      const expired = new Promise<boolean>((resolve) => (timer = setTimeout(resolve, maxWaitMs, false).unref()));
      const inTime = await Promise.race([drained, expired]);
      clearTimeout(timer);
      if (!inTime) {
        this.deps.logger.warn(
          { generation: this.id, inflight: this.inflight, waitedMs: maxWaitMs },
          `generation ${this.id} still has ${this.inflight} request(s) in flight ${maxWaitMs}ms after it was replaced; closing its plugins now`,
        );
      }
    }
    await this.close();
  }

  /** True once close() has run: its plugins are closed and its backends released. */
  get closed(): boolean {
    return this.#closed;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await closePlugins(this.plugins, this.deps.logger, (this.deps.pluginDeadlines ?? PLUGIN_DEADLINES).closeMs);
    for (const pool of this.pools.values()) pool.release();
  }
}

function implicitRoute(pool: PoolConfig): LbConfig['routes'][number] {
  return { name: 'default', host: undefined, pathPrefix: undefined, methods: undefined, pool: pool.name, pipeline: [] };
}

/** Closes every instance, each bounded by `closeMs`, one at a time in creation order. */
async function closePlugins(plugins: readonly CreatedPlugin[], logger: Logger, closeMs: number): Promise<void> {
  for (const { ref, instance } of plugins) {
    try {
      if ((await withDeadline(instance.close?.(), closeMs)) === TIMED_OUT) {
        logger.error({ plugin: ref.name, at: ref.keyPath }, `plugin "${ref.name}" at ${ref.keyPath}: close() did not finish within ${closeMs}ms; not waiting for it`);
      }
    } catch (err) {
      logger.error({ plugin: ref.name, at: ref.keyPath, err }, `plugin "${ref.name}" at ${ref.keyPath}: close() failed`);
    }
  }
}
