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

export interface GenerationDeps {
  readonly registry: BackendRegistry;
  readonly logger: Logger & { child(bindings: object): Logger };
  readonly forward: Forwarder;
}

const clock = { now: () => Date.now() };

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
    this.forwarded = new ForwardedHeaders(config.server.trustedProxies);
    this.healthCheckers = healthCheckers;
  }

  static async build(id: number, config: LbConfig, deps: GenerationDeps, previous?: Generation): Promise<Generation> {
    const created: CreatedPlugin[] = [];
    const pools = new Map<string, PoolRuntime>();
    const inheritable = previous?.inheritableState() ?? new Map<string, unknown[]>();
    const instantiate = async <I extends PluginInstance>(ref: PluginRef): Promise<I> => {
      const handed = inheritable.get(ref.identity);
      const api: PluginApi = {
        logger: deps.logger.child({ plugin: ref.name, at: ref.keyPath }),
        clock,
        configDir: config.dir,
        pluginName: ref.name,
        inherited: handed?.shift(),
      };
      const instance = (await ref.definition.create(ref.options, api)) as unknown as I;
      created.push({ ref, instance });
      return instance;
    };
    try {
      const healthCheckers = new Map<string, HealthInstance>();
      for (const pool of Object.values(config.pools)) {
        const strategy = await instantiate<StrategyInstance>(pool.strategy);
        if (pool.health) healthCheckers.set(pool.name, await instantiate<HealthInstance>(pool.health.checker));
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
      await closePlugins(created, deps.logger);
      for (const pool of pools.values()) pool.release();
      throw err;
    }
  }

  /** State plugins hand to their successors, by plugin identity (same name and options). */
  private inheritableState(): Map<string, unknown[]> {
    const out = new Map<string, unknown[]>();
    for (const { ref, instance } of this.plugins) {
      if (typeof instance.handOver !== 'function') continue;
      let list = out.get(ref.identity);
      if (!list) out.set(ref.identity, (list = []));
      list.push(instance.handOver());
    }
    return out;
  }

  enter(): void {
    this.inflight++;
  }

  leave(): void {
    if (--this.inflight === 0 && this.#retired) this.#drained?.();
  }

  /** Waits for in-flight requests, then closes plugins and releases backends. */
  async retire(): Promise<void> {
    this.#retired = true;
    if (this.inflight > 0) await new Promise<void>((resolve) => (this.#drained = resolve));
    await this.close();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await closePlugins(this.plugins, this.deps.logger);
    for (const pool of this.pools.values()) pool.release();
  }
}

function implicitRoute(pool: PoolConfig): LbConfig['routes'][number] {
  return { name: 'default', host: undefined, pathPrefix: undefined, methods: undefined, pool: pool.name, pipeline: [] };
}

async function closePlugins(plugins: readonly CreatedPlugin[], logger: Logger): Promise<void> {
  for (const { ref, instance } of plugins) {
    try {
      await instance.close?.();
    } catch (err) {
      logger.error({ plugin: ref.name, at: ref.keyPath, err }, 'plugin close() failed');
    }
  }
}
