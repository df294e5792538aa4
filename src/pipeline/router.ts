/**
 * Routes compiled once per configuration: first match wins. Host is matched
 * case-insensitively without its port or a trailing dot ("*.example.com"
 * matches subdomains); `path_prefix` is a plain prefix of the path;
 * `methods` a set.
 */
import type { RouteConfig } from '../config/types.js';

export interface CompiledRoute<T> {
  readonly config: RouteConfig;
  readonly exactHost: string | undefined;
  /** ".example.com" for "*.example.com". */
  readonly hostSuffix: string | undefined;
  readonly pathPrefix: string | undefined;
  readonly methods: ReadonlySet<string> | undefined;
  /** What the route leads to (the generation stores its pool and pipeline here). */
  readonly target: T;
}

export class Router<T> {
  readonly #routes: CompiledRoute<T>[];

  constructor(routes: readonly { config: RouteConfig; target: T }[]) {
    this.#routes = routes.map(({ config, target }) => {
      // "example.com." is "example.com" fully qualified: requests are matched without the dot too.
      const host = config.host?.endsWith('.') && config.host.length > 1 ? config.host.slice(0, -1) : config.host;
      const wildcard = host !== undefined && host.startsWith('*.');
      return {
        config,
        exactHost: wildcard ? undefined : host,
        hostSuffix: wildcard ? host!.slice(1) : undefined,
        pathPrefix: config.pathPrefix,
        methods: config.methods ? new Set(config.methods) : undefined,
        target,
      };
    });
  }

  /** `host` lower-case without port or trailing dot; `path` without the query. */
  match(method: string, host: string, path: string): T | undefined {
    const routes = this.#routes;
    for (let i = 0; i < routes.length; i++) {
      const r = routes[i]!;
      if (r.exactHost !== undefined && r.exactHost !== host) continue;
      if (r.hostSuffix !== undefined && !(host.endsWith(r.hostSuffix) && host.length > r.hostSuffix.length)) continue;
      if (r.pathPrefix !== undefined && !path.startsWith(r.pathPrefix)) continue;
      if (r.methods !== undefined && !r.methods.has(method)) continue;
      return r.target;
    }
    return undefined;
  }
}
