/** The validated, normalized, frozen configuration the runtime is built from. */
import type { PluginDefinition } from '../plugin/types.js';

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/** A configured plugin: its definition and its validated options (defaults filled in). */
export interface PluginRef {
  /** As written in lb.toml (`plugin = "…"`). */
  readonly name: string;
  readonly definition: PluginDefinition;
  readonly options: Readonly<Record<string, unknown>>;
  /** Canonical JSON of name + options: equal keys mean an unchanged plugin across reloads. */
  readonly identity: string;
  /** Where it was configured, for logs: e.g. `pipeline[1]`. */
  readonly keyPath: string;
}

export interface ServerConfig {
  readonly listen: ListenAddress;
  readonly workers: number | 'auto';
  /** `server.max_connections` as written (not yet split across workers); undefined: derived from the open-files limit. */
  readonly maxConnections: number | undefined;
  readonly maxBody: number;
  readonly maxHeaderSize: number;
  readonly maxHeadersCount: number;
  readonly headersTimeout: number;
  readonly bodyTimeout: number;
  readonly idleTimeout: number;
  /** How long a client may leave a response's written bytes unread before it is cut. */
  readonly sendTimeout: number;
  readonly shutdownGrace: number;
  readonly trustedProxies: readonly string[];
  /** Send RFC 7239 `Forwarded` as well as X-Forwarded-*. */
  readonly forwardedHeader: boolean;
  readonly tls: { readonly cert: string; readonly key: string } | undefined;
}

export interface BackendConfig {
  readonly url: string;
  readonly weight: number;
}

export interface HealthConfig {
  readonly checker: PluginRef;
  readonly interval: number;
  readonly timeout: number;
  readonly unhealthyAfter: number;
  readonly healthyAfter: number;
}

export interface PoolConfig {
  readonly name: string;
  readonly strategy: PluginRef;
  readonly connectTimeout: number;
  readonly responseTimeout: number;
  readonly maxConnections: number;
  /** Requests that may wait for a connection to one backend beyond maxConnections. */
  readonly maxQueue: number;
  readonly passiveFailures: number;
  readonly passiveCooldown: number;
  readonly backends: readonly BackendConfig[];
  readonly health: HealthConfig | undefined;
}

export interface RouteConfig {
  readonly name: string;
  /** Lower-case host; a leading "*." matches any subdomain. */
  readonly host: string | undefined;
  readonly pathPrefix: string | undefined;
  readonly methods: readonly string[] | undefined;
  readonly pool: string;
  readonly pipeline: readonly PluginRef[];
}

export interface LbConfig {
  /** Absolute path of the file this came from. */
  readonly file: string;
  readonly dir: string;
  /** sha256 of the file's bytes: a save with the same content is not a change. */
  readonly hash: string;
  readonly server: ServerConfig;
  readonly admin: { readonly listen: ListenAddress } | undefined;
  readonly pools: Readonly<Record<string, PoolConfig>>;
  readonly routes: readonly RouteConfig[];
  readonly pipeline: readonly PluginRef[];
}
