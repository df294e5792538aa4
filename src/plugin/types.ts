/**
 * The plugin contract. Everything a plugin — built-in or third-party — may
 * rely on is declared here and re-exported from the package root. Built-in
 * plugins import nothing else from the core.
 */
import type { Readable } from 'node:stream';

/** A JSON Schema (draft 2020-12 subset that ajv understands). */
export type JsonSchema = Record<string, unknown>;

/** The three things a plugin can be. */
export type PluginKind = 'middleware' | 'strategy' | 'health';

/** Structured logger handed to every plugin (pino-compatible subset). */
export interface Logger {
  debug(obj: object | string, msg?: string): void;
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
}

/**
 * A key/value store that state shared between requests can live in. The
 * memory store is per process; a Redis-backed store (issue: scale) shares it
 * between instances. Values are opaque strings.
 */
export interface PluginApi {
  /** Logger bound to this plugin (`plugin` field set). */
  readonly logger: Logger;
  /** Wall-clock milliseconds; plugins read time through this so tests can reason about it. */
  readonly clock: { now(): number };
  /** Absolute directory of the lb.toml this plugin was configured from. */
  readonly configDir: string;
  /** The name this plugin was configured under (`plugin = "…"`). */
  readonly pluginName: string;
  /**
   * State the previous configuration generation's instance of this plugin
   * handed over (see `PluginInstance.handOver`), when its config did not change.
   */
  readonly inherited?: unknown;
}

/** One backend as a strategy or a selection-aware middleware sees it. */
export interface Candidate {
  /** Backend origin as configured, e.g. `http://127.0.0.1:8001`. */
  readonly url: string;
  /** Relative weight from config (default 1). */
  readonly weight: number;
  /** Requests in flight to this backend right now, over every pool that uses it. */
  readonly activeConnections: number;
  /** Whether the backend is currently in rotation (health checks, passive detection). */
  readonly healthy: boolean;
}

/** The pool a request is being sent to. */
export interface PoolView {
  readonly name: string;
  /** Every configured backend of the pool, in config order, healthy or not. */
  readonly backends: readonly Candidate[];
}

/** The response head a middleware sees after `await next()`. */
export interface ResponseHead {
  /** Status code; a middleware may change it before it is written. */
  status: number;
  /** Response headers, lower-case names, mutable until the head is written. */
  readonly headers: Record<string, string | string[]>;
  /** `backend` when it came from a backend, `local` when a plugin or the core answered. */
  readonly source: 'backend' | 'local';
}

/** What a middleware plugin's `handle` receives. */
export interface RequestContext {
  /** Request method, upper-case. */
  readonly method: string;
  /** Request target as it will be forwarded (path and query). A plugin may rewrite it. */
  path: string;
  /** Host the client asked for, lower-case, without port ('' when absent). */
  readonly host: string;
  /** Address of the client that connected (or, behind a trusted proxy, the one it names). */
  readonly clientIp: string;
  /** `https` when the listener terminates TLS, else `http`. */
  readonly protocol: 'http' | 'https';
  /** Headers that go upstream: lower-case names, mutable. Hop-by-hop headers are already removed. */
  readonly headers: Record<string, string | string[] | undefined>;
  /**
   * Body that goes upstream: the client's stream, a Buffer a plugin replaced
   * it with, or null when the request has none.
   */
  body: Readable | Buffer | null;
  /** Scratch space for plugins, per request. */
  readonly state: Record<string, unknown>;
  /** The pool this request's route sends it to. */
  readonly pool: PoolView;
  /** Number of times `next()` reached a backend so far (0 before the first). */
  readonly attempt: number;
  /** After `next()`: the response head, mutable until it is written. */
  response: ResponseHead | undefined;
  /** After `next()`: the backend that was chosen for the latest attempt. */
  backend: Candidate | undefined;
  /**
   * Answer the request without a backend. The pipeline unwinds normally,
   * so outer middleware still see (and may change) this response.
   */
  respond(status: number, body?: string | Buffer, headers?: Record<string, string | string[]>): void;
  /** Ask selection to use this backend if it is in the pool and healthy (sticky sessions). */
  pin(url: string): void;
  /** Keep this backend out of selection for this request (circuit breaker). */
  exclude(url: string): void;
  /**
   * Read the rest of the request body into memory, up to `maxBytes`, and make
   * it the body (so it can be sent again). Resolves to the Buffer, or to
   * undefined when the body is larger than `maxBytes` (the body then streams
   * as before and cannot be replayed).
   */
  bufferBody(maxBytes: number): Promise<Buffer | undefined>;
}

/** Calls the rest of the pipeline; resolves when a response head is ready. */
export type Next = () => Promise<void>;

/** Returned by every plugin's `create()`. */
export interface PluginInstance {
  /** Called once the generation that created this instance has drained (or on shutdown). */
  close?(): void | Promise<void>;
  /**
   * Called on reload when the new generation configures this plugin with the
   * same config: whatever it returns reaches the new instance as `api.inherited`.
   */
  handOver?(): unknown;
}

export interface MiddlewareInstance extends PluginInstance {
  handle(ctx: RequestContext, next: Next): Promise<void>;
}

export interface StrategyInstance extends PluginInstance {
  /** Pick one of `candidates` (healthy, not excluded, in config order), or undefined when none fit. */
  pick(candidates: readonly Candidate[], ctx: RequestContext): Candidate | undefined;
}

/** What a health checker probes. */
export interface HealthTarget {
  /** Backend origin, e.g. `http://127.0.0.1:8001`. */
  readonly url: string;
  readonly protocol: 'http:' | 'https:';
  readonly hostname: string;
  readonly port: number;
}

export interface HealthInstance extends PluginInstance {
  /**
   * Probe one backend. Resolve true (healthy) or false; throwing counts as
   * unhealthy and its message becomes the reason. `signal` aborts at the
   * pool's health `timeout`.
   */
  check(target: HealthTarget, signal: AbortSignal): Promise<boolean | HealthResult>;
}

/** A richer health answer: the reason shows in logs and /status. */
export interface HealthResult {
  readonly healthy: boolean;
  readonly reason?: string;
}

interface DefinitionBase<Config> {
  /** Name used in `lb.toml` for built-ins; informative for third-party plugins. */
  readonly name: string;
  /** JSON Schema of this plugin's table (the `plugin` key excluded). Defaults are filled in. */
  readonly schema?: JsonSchema;
  /** One-line description shown by `lb schema`. */
  readonly description?: string;
}

export interface MiddlewareDefinition<Config = any> extends DefinitionBase<Config> {
  readonly kind: 'middleware';
  create(config: Config, api: PluginApi): MiddlewareInstance | Promise<MiddlewareInstance>;
}

export interface StrategyDefinition<Config = any> extends DefinitionBase<Config> {
  readonly kind: 'strategy';
  create(config: Config, api: PluginApi): StrategyInstance | Promise<StrategyInstance>;
}

export interface HealthDefinition<Config = any> extends DefinitionBase<Config> {
  readonly kind: 'health';
  create(config: Config, api: PluginApi): HealthInstance | Promise<HealthInstance>;
}

export type PluginDefinition<Config = any> =
  | MiddlewareDefinition<Config>
  | StrategyDefinition<Config>
  | HealthDefinition<Config>;
