/**
 * The plugin contract. Everything a plugin — built-in or third-party — may
 * rely on is declared here and re-exported from the package root. Built-in
 * plugins import nothing else from the core. PLUGINS.md is the guide; the
 * comments here are the reference.
 */
// Emitted into the .d.ts so that a plugin project type-checks without
// installing @types/node itself: the reference resolves from this package.
/// <reference types="node" preserve="true" />
import type { Readable } from 'node:stream';

/** A JSON Schema (draft 2020-12 subset that ajv understands). */
export type JsonSchema = Record<string, unknown>;

/** The three things a plugin can be. */
export type PluginKind = 'middleware' | 'strategy' | 'health';

/** Structured logger handed to every plugin (pino-compatible subset). */
export interface Logger {
  /** Detail for debugging; off unless `--log-level debug`. */
  debug(obj: object | string, msg?: string): void;
  /** Something worth knowing happened. */
  info(obj: object | string, msg?: string): void;
  /** Something is wrong but the plugin copes. */
  warn(obj: object | string, msg?: string): void;
  /** Something failed; pass `{ err }` to log the error with its stack. */
  error(obj: object | string, msg?: string): void;
}

/**
 * What the core hands every plugin's `create(config, api)`: one object per
 * plugin instance, valid for the life of that instance.
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
   * Every backend URL the configuration of this instance lists, over all its
   * pools (as `Candidate.url`). State kept per backend URL and handed over
   * across reloads must drop the URLs no longer listed, or it grows with
   * every backend that ever came and went (autoscaled pods, each with a new
   * address): see `handOver` and `PerBackendState`.
   */
  readonly backendUrls: ReadonlySet<string>;
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
  /** Pool name as in lb.toml (`[pools.NAME]`). */
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
  /** Host the client asked for, lower-case, without port or trailing dot ('' when absent). */
  readonly host: string;
  /** Address of the client that connected (or, behind a trusted proxy, the one it names). */
  readonly clientIp: string;
  /** `https` when the listener terminates TLS, else `http`. */
  readonly protocol: 'http' | 'https';
  /** Headers that go upstream: lower-case names, mutable. Hop-by-hop headers are already removed. */
  readonly headers: Record<string, string | string[] | undefined>;
  /**
   * Body that goes upstream: a Buffer for a Content-Length body of at most
   * 64 KB (the core reads those whole before the pipeline runs), the client's
   * stream for larger and chunked ones, a Buffer a plugin replaced it with,
   * or null when the request has none.
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

/**
 * Calls the rest of the pipeline; resolves when a response head is ready in
 * `ctx.response`, rejects with an `LbError` when no backend answered (let it
 * through, or catch it and `ctx.respond()` instead).
 */
export type Next = () => Promise<void>;

/** The hooks every plugin instance (the object `create()` returns) may have. */
export interface PluginInstance {
  /**
   * Release what `create()` acquired (timers, sockets). Called once, after
   * the configuration generation that created this instance has been
   * replaced and its in-flight requests have finished (at most
   * `server.shutdown_grace` after the replacement), on shutdown, or when
   * building the generation failed after this instance was created. A throw
   * or rejection is logged and ignored. Not called for an instance whose
   * `create()` threw.
   */
  close?(): void | Promise<void>;
  /**
   * Called on reload, on the running instance, while the new generation is
   * built, when the new generation configures this plugin with the same
   * options and the same module: whatever it returns reaches the new instance
   * as `api.inherited`. The running instance keeps serving requests until it
   * has drained — and all of them if the new generation then fails to build —
   * so hand over state to share (a Map, a bucket store), not state to move.
   * Both instances are closed later, in either order (the old one after it
   * drains; the new one first if its generation fails to build): when the
   * shared state holds a resource (a socket, a timer), count the instances
   * using it and release it in the last `close()`. State kept per backend
   * URL is pruned the same way: in `close()`, to the `api.backendUrls` of
   * the instances still using it (`PerBackendState` does that).
   * A throw is logged and the new instance starts without inherited state.
   */
  handOver?(): unknown;
}

/** A middleware plugin instance: one layer of the request pipeline's onion. */
export interface MiddlewareInstance extends PluginInstance {
  /**
   * Runs for every request routed through this layer. Code before
   * `await next()` sees and may change the request (`ctx.path`,
   * `ctx.headers`, `ctx.body`); code after it sees `ctx.response` and may
   * change its status and headers before they are written. Answer without a
   * backend with `ctx.respond()` and by not calling `next()`; call `next()`
   * again to retry. Throwing (or rejecting) gives this request a 500
   * (`LB_ERR_PLUGIN`, logged with this plugin's name); an `LbError` thrown by
   * `next()` passes through with its own status. Nothing times `handle` out:
   * if it never settles, the request is held until the client goes away.
   */
  handle(ctx: RequestContext, next: Next): Promise<void>;
}

/** A strategy plugin instance: the pool's choice of backend for each attempt. */
export interface StrategyInstance extends PluginInstance {
  /**
   * Pick one of `candidates` (healthy, not excluded, in config order — never
   * empty), or undefined when none fit (the client gets 503). Must return
   * one of the given objects, synchronously. Throwing gives this request a
   * 500 (`LB_ERR_PLUGIN`, logged with the strategy's name).
   */
  pick(candidates: readonly Candidate[], ctx: RequestContext): Candidate | undefined;
}

/** What a health checker probes. */
export interface HealthTarget {
  /** Backend origin, e.g. `http://127.0.0.1:8001`. */
  readonly url: string;
  /** URL scheme, with its colon as in `URL.protocol`. */
  readonly protocol: 'http:' | 'https:';
  /** Host name or IP address, IPv6 without brackets. */
  readonly hostname: string;
  /** Port number (80 or 443 when the URL names none). */
  readonly port: number;
}

/** A health-check plugin instance: probes backends for a pool's `[health]` table. */
export interface HealthInstance extends PluginInstance {
  /**
   * Probe one backend. Resolve true (healthy) or false; throwing counts as
   * unhealthy and its message becomes the reason — except an error whose
   * code (or its cause's) says this process ran short of a resource
   * (EMFILE, ENFILE, ENOBUFS, ENOMEM, EADDRNOTAVAIL): the check could not
   * run, and counts neither way. `signal` aborts at the pool's health
   * `timeout`: pass it to your I/O; a probe still pending then counts as a
   * failure with a timeout reason.
   */
  check(target: HealthTarget, signal: AbortSignal): Promise<boolean | HealthResult>;
}

/** A richer health answer: the reason shows in logs and /status. */
export interface HealthResult {
  /** In rotation (after `healthy_after` successes) or not (after `unhealthy_after` failures). */
  readonly healthy: boolean;
  /** Why, in a few words: shown in logs and `/status`. */
  readonly reason?: string;
}

/** What every plugin definition has, whatever its kind. */
export interface DefinitionBase<Config> {
  /** Name used in `lb.toml` for built-ins; informative for third-party plugins. */
  readonly name: string;
  /**
   * JSON Schema of this plugin's table (the `plugin` key excluded). lb.toml
   * is checked against it before anything starts (`lb validate` reports
   * violations at file:line:col), `default`s are filled in, and the result
   * is what `create()` receives. Give every property a `description`.
   */
  readonly schema?: JsonSchema;
  /** One-line description shown by `lb schema`. */
  readonly description?: string;
}

/** A middleware plugin: `create()` returns an object with `handle(ctx, next)`. */
export interface MiddlewareDefinition<Config = any> extends DefinitionBase<Config> {
  readonly kind: 'middleware';
  /**
   * Builds one instance for one place in lb.toml, once per configuration
   * generation (every reload), before that generation takes traffic. May be
   * async. Throwing fails the whole reload (the running configuration keeps
   * serving and the error is logged at this plugin's table); at startup it
   * stops `lb run`.
   */
  create(config: Config, api: PluginApi): MiddlewareInstance | Promise<MiddlewareInstance>;
}

/** A strategy plugin: `create()` returns an object with `pick(candidates, ctx)`. */
export interface StrategyDefinition<Config = any> extends DefinitionBase<Config> {
  readonly kind: 'strategy';
  /** Builds the strategy of one pool, per generation; contract as for `MiddlewareDefinition.create`. */
  create(config: Config, api: PluginApi): StrategyInstance | Promise<StrategyInstance>;
}

/** A health-check plugin: `create()` returns an object with `check(target, signal)`. */
export interface HealthDefinition<Config = any> extends DefinitionBase<Config> {
  readonly kind: 'health';
  /** Builds the checker of one pool, per generation; contract as for `MiddlewareDefinition.create`. */
  create(config: Config, api: PluginApi): HealthInstance | Promise<HealthInstance>;
}

/**
 * A plugin module's default export: what `definePlugin` checks. A plain
 * object of this shape works too, without importing anything.
 */
export type PluginDefinition<Config = any> =
  | MiddlewareDefinition<Config>
  | StrategyDefinition<Config>
  | HealthDefinition<Config>;
