/**
 * What a reload changes, for the one log line each reload writes: routes,
 * pools, backends and plugin places added, removed or changed, and which
 * server settings moved. Pure: two configs in, a description out.
 */
import type { LbConfig, PluginRef, PoolConfig, RouteConfig } from '../config/types.js';

/** Names (or keys) that appeared, disappeared, or stayed with a different value. */
export interface SetChange {
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly changed: readonly string[];
}

export interface ConfigChanges {
  /** Routes by name (`name`, or the route's index when it has none). */
  readonly routes: SetChange;
  /** Pools by name; `changed` when any of their settings, backends, strategy or health check changed. */
  readonly pools: SetChange;
  /** Backends as `POOL URL`; `changed` = same backend, different weight. */
  readonly backends: SetChange;
  /**
   * Plugins by where they are configured (`pipeline[0]`, `pools.web.strategy`,
   * `pools.web.health.checker`, `routes[1].pipeline[0]`); `changed` when the
   * plugin, its options or its module's code differ.
   */
  readonly plugins: SetChange;
  /** Changed `[server]` / `[admin]` settings, e.g. `server.listen`. */
  readonly settings: readonly string[];
}

const NOTHING: SetChange = { added: [], removed: [], changed: [] };

/** JSON of a config part with plugin definitions (module objects) left out. */
function fingerprint(value: unknown): string {
  return JSON.stringify(value, (key, v: unknown) => (key === 'definition' ? undefined : v)) ?? '';
}

function diffMaps<T>(before: ReadonlyMap<string, T>, after: ReadonlyMap<string, T>, same: (a: T, b: T) => boolean): SetChange {
  const added: string[] = [];
  const removed: string[] = [];
  const changed: string[] = [];
  for (const [key, value] of after) {
    const old = before.get(key);
    if (old === undefined) added.push(key);
    else if (!same(old, value)) changed.push(key);
  }
  for (const key of before.keys()) if (!after.has(key)) removed.push(key);
  return added.length + removed.length + changed.length === 0 ? NOTHING : { added, removed, changed };
}

function pluginPlaces(config: LbConfig): Map<string, PluginRef> {
  const out = new Map<string, PluginRef>();
  for (const pool of Object.values(config.pools)) {
    out.set(`pools.${pool.name}.strategy`, pool.strategy);
    if (pool.health) out.set(`pools.${pool.name}.health.checker`, pool.health.checker);
  }
  config.pipeline.forEach((ref, i) => out.set(`pipeline[${i}]`, ref));
  config.routes.forEach((route, r) => route.pipeline.forEach((ref, i) => out.set(`routes[${r}].pipeline[${i}]`, ref)));
  return out;
}

function backendsOf(config: LbConfig): Map<string, number> {
  const out = new Map<string, number>();
  for (const pool of Object.values(config.pools)) for (const b of pool.backends) out.set(`${pool.name} ${b.url}`, b.weight);
  return out;
}

function samePlugin(a: PluginRef, b: PluginRef): boolean {
  return a.identity === b.identity && a.definition === b.definition;
}

function samePool(a: PoolConfig, b: PoolConfig): boolean {
  return (
    fingerprint(a) === fingerprint(b) &&
    a.strategy.definition === b.strategy.definition &&
    a.health?.checker.definition === b.health?.checker.definition
  );
}

function sameRoute(a: RouteConfig, b: RouteConfig): boolean {
  return fingerprint(a) === fingerprint(b) && a.pipeline.every((ref, i) => ref.definition === b.pipeline[i]!.definition);
}

/** The changes that turn `before` into `after`. */
export function diffConfigs(before: LbConfig, after: LbConfig): ConfigChanges {
  const settings: string[] = [];
  const server = before.server as unknown as Record<string, unknown>;
  const nextServer = after.server as unknown as Record<string, unknown>;
  for (const key of Object.keys(nextServer)) {
    if (fingerprint(server[key]) !== fingerprint(nextServer[key])) settings.push(`server.${snakeCase(key)}`);
  }
  if (fingerprint(before.admin) !== fingerprint(after.admin)) settings.push('admin.listen');
  const pools = diffMaps(new Map(Object.entries(before.pools)), new Map(Object.entries(after.pools)), samePool);
  const plugins = diffMaps(pluginPlaces(before), pluginPlaces(after), samePlugin);
  // The strategy and checker of a pool added or removed go without saying.
  const ofPools = (names: readonly string[]) => (place: string) => !names.some((p) => place.startsWith(`pools.${p}.`));
  return {
    routes: diffMaps(routeMap(before.routes), routeMap(after.routes), sameRoute),
    pools,
    backends: diffMaps(backendsOf(before), backendsOf(after), (a, b) => a === b),
    plugins: {
      added: plugins.added.filter(ofPools(pools.added)),
      removed: plugins.removed.filter(ofPools(pools.removed)),
      changed: plugins.changed,
    },
    settings,
  };
}

function routeMap(routes: readonly RouteConfig[]): Map<string, RouteConfig> {
  return new Map(routes.map((r) => [r.name, r]));
}

function snakeCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** True when the two configs differ in nothing the runtime uses (e.g. only comments changed). */
export function isUnchanged(changes: ConfigChanges): boolean {
  return (
    changes.settings.length === 0 &&
    [changes.routes, changes.pools, changes.backends, changes.plugins].every(
      (c) => c.added.length + c.removed.length + c.changed.length === 0,
    )
  );
}

/**
 * One line for humans: `pools ~web; backends +web http://…:8003 -web http://…:8001;
 * plugins ~pipeline[0]; settings server.listen` (`+` added, `-` removed, `~` changed).
 */
export function describeChanges(changes: ConfigChanges): string {
  const parts: string[] = [];
  const section = (label: string, c: SetChange) => {
    const items = [...c.added.map((k) => `+${k}`), ...c.removed.map((k) => `-${k}`), ...c.changed.map((k) => `~${k}`)];
    if (items.length > 0) parts.push(`${label} ${items.join(', ')}`);
  };
  section('routes', changes.routes);
  section('pools', changes.pools);
  section('backends', changes.backends);
  section('plugins', changes.plugins);
  if (changes.settings.length > 0) parts.push(`settings ${changes.settings.join(', ')}`);
  return parts.length === 0 ? 'no effective change' : parts.join('; ');
}
