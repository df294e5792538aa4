/**
 * One running Switchyard: the backend registry (which outlives
 * generations), the current generation, the traffic listener, and the
 * operations on them: start, reload, shut down.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { pino } from 'pino';
import { loadConfigText } from '../config/load.js';
import type { LbConfig, PluginRef } from '../config/types.js';
import type { Logger, PluginDefinition, PluginKind } from '../plugin/types.js';
import type { Backend, BackendState } from '../pool/backend.js';
import { closeTunnelsAfter } from '../pool/open-tunnels.js';
import { BackendRegistry } from '../pool/backend-registry.js';
import { PassiveDetector, type PassiveDownReport } from '../pool/passive-detector.js';
import { createForwarder } from '../proxy/forward.js';
import { Generation, type GenerationDeps } from './generation.js';
import { TrafficServer } from './traffic-server.js';
import { ReloadHistory, locatePluginFailure } from './reload-history.js';
import { applyListenerSettings, listenerNeedsRebind, readListenerCertificate, sameListen } from './listener-settings.js';
import { HealthScheduler } from '../health/health-scheduler.js';
import { ListenError } from './listen-error.js';
import { clientConnectionLimit, describeClientConnectionLimit, type ClientConnectionLimit } from './client-connection-limit.js';
import { readOpenFilesLimit } from './open-files-limit.js';
import { ClientConnectionCounts, type ClientConnectionFigures } from './client-connection-counts.js';
import { workerCount } from '../cluster/worker-count.js';
import { UNDICI_REASON } from '../client/response-parser.js';
import type { AdminServer } from '../admin/admin-server.js';
import type { AdminSource } from '../admin/admin-source.js';

export type RootLogger = Logger & { child(bindings: object): RootLogger };

/** On a listener being retired: answer, then close the connection so the client reconnects to the new one. */
function endAfterResponse(_req: IncomingMessage, res: ServerResponse): void {
  res.shouldKeepAlive = false;
}

/**
 * What one Switchyard process does. 'standalone' (`workers = 1`): all of it.
 * In a cluster the work is split: the primary is 'control' — it builds every
 * generation (so a configuration is validated and its plugins started once,
 * before any worker sees it), runs the health checks and the admin listener,
 * and binds no traffic listener; each worker is 'traffic' — it serves, and
 * takes configuration and backend health from the primary: no health checks,
 * no admin listener, and what the primary logs for the whole cluster
 * (applied reloads, state changes it was told about) it logs at debug level.
 */
const NOT_APPLIED_SHUTTING_DOWN = 'Switchyard is shutting down; the configuration was not applied';

export type SwitchyardRole = 'standalone' | 'control' | 'traffic';

/**
 * The kinds of plugin each role runs. A process creates only those: the
 * others get stand-ins, so a cluster primary holds no connection or timer of
 * a middleware or strategy (its workers create and check them), nor a
 * worker of a health checker (its primary does).
 */
const KINDS_RUN: Readonly<Record<SwitchyardRole, ReadonlySet<PluginKind>>> = {
  standalone: new Set(['middleware', 'strategy', 'health']),
  control: new Set(['health']),
  traffic: new Set(['middleware', 'strategy']),
};

const standIns = new WeakMap<PluginDefinition, PluginDefinition>();

/**
 * `definition` for a process that does not run its kind: create() returns
 * an instance that acquires nothing and is never called. One stand-in per
 * definition, so that reloads compare plugins (and their changes) as they
 * would the real ones.
 */
function standInFor(definition: PluginDefinition): PluginDefinition {
  let standIn = standIns.get(definition);
  if (standIn === undefined) {
    const notRunHere = (): never => {
      throw new Error(`plugin "${definition.name}" (${definition.kind}) does not run in this process`);
    };
    // Has the hook of every kind, as a generation requires of each.
    const instance = { handle: notRunHere, pick: notRunHere, check: notRunHere };
    standIn = { ...definition, create: () => instance };
    standIns.set(definition, standIn);
  }
  return standIn;
}

/** `config` as a process in `role` builds it: the plugins of kinds it does not run replaced by stand-ins. */
function configForRole(config: LbConfig, role: SwitchyardRole): LbConfig {
  if (role === 'standalone') return config;
  const runs = KINDS_RUN[role];
  const refFor = (ref: PluginRef): PluginRef => (runs.has(ref.definition.kind) ? ref : { ...ref, definition: standInFor(ref.definition) });
  const pools: LbConfig['pools'] = Object.fromEntries(
    Object.entries(config.pools).map(([name, pool]) => [
      name,
      { ...pool, strategy: refFor(pool.strategy), health: pool.health && { ...pool.health, checker: refFor(pool.health.checker) } },
    ]),
  );
  return {
    ...config,
    pools,
    pipeline: config.pipeline.map(refFor),
    routes: config.routes.map((route) => ({ ...route, pipeline: route.pipeline.map(refFor) })),
  };
}

/**
 * A reload validated and built beside the running generation — with its own
 * listener bound when `server.listen` changed — that serves nothing yet.
 * Exactly one of commit() and abort() must follow; until then no other
 * reload of this Switchyard starts. A cluster prepares a configuration in
 * every process, then commits it everywhere or aborts it everywhere.
 */
export interface PreparedReload {
  /** The generation that commit() puts in service. */
  readonly generation: Generation;
  /** Swaps it in (as reload() does): new requests use it at once, the replaced generation drains. */
  commit(): Promise<Generation>;
  /**
   * Closes what was prepared and leaves the running generation and listener
   * as they were; `problems` (why it is not applied) is recorded as a refused
   * reload. Calling it again does nothing.
   */
  abort(problems: readonly string[]): Promise<void>;
}

export interface StartOptions {
  readonly logger?: RootLogger;
  /** Default 'standalone'. */
  readonly role?: SwitchyardRole;
  /** Number of the first generation (a worker numbers its generations as its primary does). Default 1. */
  readonly generation?: number;
  /** Called with every generation once it is built, before it serves (a worker applies the backend health it was told). */
  readonly onGeneration?: (generation: Generation, lb: Switchyard) => void;
  /** Passive detection reports a backend it took down here instead of running its cooldown (a worker: to its primary). */
  readonly onPassiveDown?: PassiveDownReport;
  /** What the admin listener reads; default: this Switchyard (a cluster primary sums its workers' counters). */
  readonly adminSource?: (lb: Switchyard) => AdminSource;
  /**
   * A cluster primary accepts the connections and hands them to this
   * process (node:cluster's SCHED_RR): see TrafficServer's
   * `connectionsHandedOver`. Default false: this process accepts them.
   */
  readonly connectionsHandedOver?: boolean;
}

/** One backend's health as decided elsewhere (a cluster primary), to apply here. */
export interface RemoteBackendState {
  readonly url: string;
  readonly state: BackendState;
  readonly reason: string;
  readonly changedAt: number;
}

/**
 * Throws for a `[server]` change no listener can take: TLS switched on or
 * off on the address in use (the new listener would have to bind it while
 * the old one still holds it).
 */
function checkListenerChange(before: LbConfig, after: LbConfig): void {
  const { host, port } = after.server.listen;
  const current = before.server.listen;
  if (listenerNeedsRebind(before.server, after.server) && current.host === host && current.port === port) {
    throw new Error(
      `switching TLS ${after.server.tls ? 'on' : 'off'} needs a new listener, and ${host}:${port} is in use by the running one: restart, or change server.listen too`,
    );
  }
}

/** Throws when the certificate or key a config names cannot be read or used together (what a listener would fail on). */
function readCertificates(config: LbConfig): void {
  if (config.server.tls !== undefined) readListenerCertificate(config.server.tls);
}

export class Switchyard {
  readonly registry = new BackendRegistry();
  readonly logger: RootLogger;
  readonly #passive: PassiveDetector;
  readonly #deps: GenerationDeps;
  #generation: Generation | undefined;
  #nextId: number;
  readonly role: SwitchyardRole;
  readonly #onGeneration: ((generation: Generation, lb: Switchyard) => void) | undefined;
  readonly #adminSource: (lb: Switchyard) => AdminSource;
  readonly #connectionsHandedOver: boolean;
  /** Set while a state decided elsewhere is applied: its change is logged where it was decided. */
  #applyingRemoteState = false;
  #traffic: TrafficServer | undefined;
  #address: AddressInfo | undefined;
  #closing: Promise<void> | undefined;
  /** Reloads run one at a time, in the order they were asked for; a prepared one holds the next until it is decided. */
  #reloading: Promise<unknown> = Promise.resolve();
  /** A prepared reload not yet committed or aborted (shutdown aborts it). */
  #prepared: PreparedReload | undefined;
  /** A reload being built (shutdown waits for it: it then finds #closing set and undoes itself). */
  #building: Promise<unknown> | undefined;
  /** Listeners replaced by a rebind that still have connections finishing. */
  readonly #retiredListeners = new Set<Promise<void>>();
  /** Replaced generations that are still draining. */
  readonly #retiring = new Set<Promise<void>>();
  /** Applied and failed reloads, for logs, /status and /metrics. */
  readonly reloads = new ReloadHistory();
  /** Active health checks: one probe loop per backend URL, following the serving generation. */
  readonly health: HealthScheduler;
  readonly startedAt = new Date();
  /** This process's soft open-files limit, read once at start: the default client connection limit is derived from it. */
  #openFiles: number | undefined;
  /** The admin listener (/healthz, /status, /metrics, dashboard) while `[admin] listen` is set. */
  #admin: AdminServer | undefined;
  /** Client connections open and refused, over every traffic listener this process has had. */
  readonly #clientCounts = new ClientConnectionCounts();

  constructor(options: StartOptions = {}) {
    this.logger = options.logger ?? (pino({ name: 'switchyard' }) as unknown as RootLogger);
    this.role = options.role ?? 'standalone';
    this.#nextId = options.generation ?? 1;
    this.#onGeneration = options.onGeneration;
    this.#adminSource = options.adminSource ?? ((lb) => lb);
    this.#connectionsHandedOver = options.connectionsHandedOver ?? false;
    this.health = new HealthScheduler(this.registry, this.logger);
    this.#passive = new PassiveDetector(this.registry, this.#activelyChecked, options.onPassiveDown);
    this.#deps = { registry: this.registry, logger: this.logger, forward: createForwarder(this.#passive.onFailure) };
    // The one log line per state change, whoever made it (active checks, passive detection).
    this.registry.on('change', ({ backend, from, to, reason }) => {
      const pool = this.#poolsOf(backend.url);
      const level = this.#applyingRemoteState ? 'debug' : 'info';
      this.logger[level]({ pool, backend: backend.url, from, to, reason }, `pool ${pool} backend ${backend.url}: ${from} → ${to} (${reason})`);
    });
    this.registry.on('released', this.#closeTunnelsOf);
  }

  /**
   * Whether a pool of the serving generation checks `backend` actively. Read
   * from the configuration, not from this process's health scheduler: a
   * cluster worker runs no checks, yet its backends are brought back by the
   * primary's.
   */
  readonly #activelyChecked = (backend: Backend): boolean => {
    for (const pool of this.#generation?.pools.values() ?? []) {
      if (pool.config.health === undefined) continue;
      for (let i = 0; i < pool.backends.length; i++) if (pool.backends[i]!.backend === backend) return true;
    }
    return false;
  };

  /** A reload removed `backend`: its WebSocket tunnels get the shutdown grace, then are closed. */
  readonly #closeTunnelsOf = (backend: Backend): void => {
    const graceMs = this.#generation?.config.server.shutdownGrace ?? 0;
    closeTunnelsAfter(backend, graceMs, (count) => {
      this.logger.warn(
        { backend: backend.url, tunnels: count, graceMs },
        `backend ${backend.url} was removed from the configuration: closed ${count} tunnel(s) (WebSocket) to it still open ${graceMs}ms later`,
      );
    });
  };

  static async start(config: LbConfig, options: StartOptions = {}): Promise<Switchyard> {
    const lb = new Switchyard(options);
    try {
      await lb.#start(config);
    } catch (err) {
      await lb.close(0);
      throw err;
    }
    return lb;
  }

  get generation(): Generation {
    if (!this.#generation) throw new Error('Switchyard is not started');
    return this.#generation;
  }

  /** Address the traffic listener is bound to. */
  get address(): AddressInfo {
    if (!this.#address) throw new Error('Switchyard is not listening');
    return this.#address;
  }

  async #start(config: LbConfig): Promise<void> {
    this.#openFiles = await readOpenFilesLimit();
    this.#generation = await Generation.build(this.#nextId++, configForRole(config, this.role), this.#deps);
    this.#onGeneration?.(this.#generation, this);
    if (this.role === 'control') {
      this.health.sync(this.#generation);
      this.logger.debug({ generation: this.#generation.id, config: config.file }, `generation ${this.#generation.id} built; no traffic listener in this process`);
      this.#logClientLimit(this.#clientLimitFor(config));
      await this.#syncAdmin(config, true);
      return;
    }
    if (this.role === 'standalone') this.health.sync(this.#generation);
    if (UNDICI_REASON !== undefined) this.logger.info({ backendClient: 'undici' }, `backends are reached through undici, the slower client (${UNDICI_REASON})`);
    const clientLimit = this.#clientLimitFor(config);
    this.#traffic = new TrafficServer(this.#generation, this.logger, clientLimit, this.#clientCounts, this.#connectionsHandedOver);
    const { host, port } = config.server.listen;
    try {
      this.#address = await this.#traffic.listen();
    } catch (err) {
      throw new ListenError('server.listen', host, port, err);
    }
    // A worker's primary says once for the cluster where it listens.
    this.logger[this.role === 'traffic' ? 'debug' : 'info'](
      { listen: `${this.#address.address}:${this.#address.port}`, generation: this.#generation.id, config: config.file },
      `Switchyard listening on ${this.#traffic.protocol}://${this.#address.address}:${this.#address.port}`,
    );
    this.#logClientLimit(clientLimit);
    if (this.role === 'standalone') await this.#syncAdmin(config, true);
  }

  /**
   * The client connection limit of this process's listener under `config`:
   * server.max_connections split across the workers of a cluster, or
   * derived from the open-files limit. A cluster primary computes its
   * workers' (they inherit its open-files limit) to log it once for all.
   * A single process serves alone even when a reload asked for more
   * workers (that takes a restart), so it keeps the whole limit.
   */
  #clientLimitFor(config: LbConfig): ClientConnectionLimit {
    const processes = this.role === 'standalone' ? 1 : workerCount(config.server.workers);
    return clientConnectionLimit(config.server.maxConnections, processes, this.#openFiles);
  }

  /** One line where the limit is set; a cluster's workers leave it to their primary. */
  #logClientLimit(limit: ClientConnectionLimit): void {
    this.logger[this.role === 'traffic' ? 'debug' : 'info'](
      { maxConnections: limit.max ?? null, openFilesLimit: this.#openFiles ?? null },
      describeClientConnectionLimit(limit, this.role === 'control'),
    );
  }

  /**
   * Applies a backend's health decided by another process (a cluster
   * primary). False when no generation here uses that URL (yet).
   */
  applyBackendState(update: RemoteBackendState): boolean {
    const backend = this.registry.get(update.url);
    if (backend === undefined) return false;
    this.#applyingRemoteState = true;
    try {
      this.registry.setState(backend, update.state, update.reason);
    } finally {
      this.#applyingRemoteState = false;
    }
    backend.changedAt = update.changedAt;
    return true;
  }

  /**
   * Another process (a cluster worker) took the backend at `url` out on its
   * traffic for `pool`: take it out here, and bring it back like passive
   * detection here would (active checks, or the pool's cooldown).
   */
  passiveDown(url: string, pool: string, reason: string): void {
    const backend = this.registry.get(url);
    const generation = this.#generation;
    if (backend === undefined || generation === undefined) return;
    // The pool may be gone after a reload: then any pool that lists the backend.
    const runtime = generation.pools.get(pool) ?? [...generation.pools.values()].find((p) => p.backends.some((m) => m.url === url));
    if (runtime === undefined) return;
    this.#passive.takeDown(backend, runtime.config, reason);
  }

  /** This process's client connections: open now, and refused past the limit since start (zero in a cluster primary, which serves no traffic). */
  get clientConnections(): ClientConnectionFigures {
    return this.#clientCounts;
  }

  /** Address the admin listener is bound to; undefined when `[admin]` is not configured. */
  get adminAddress(): AddressInfo | undefined {
    return this.#admin?.address;
  }

  /** Pool names (comma-separated, config order) of the serving generation that list `url`, for logs. */
  #poolsOf(url: string): string {
    const names: string[] = [];
    for (const pool of this.#generation?.pools.values() ?? []) {
      if (pool.backends.some((m) => m.url === url)) names.push(pool.name);
    }
    return names.join(',');
  }

  /**
   * Starts, moves or stops the admin listener to match `config.admin`. At
   * start a failed bind fails the start; on reload it is logged and the
   * admin API stays where it was (the new configuration serves regardless).
   */
  async #syncAdmin(config: LbConfig, starting: boolean): Promise<void> {
    // A reload that finishes after shutdown began must not open it again.
    if (this.#closing) return;
    const wanted = config.admin?.listen;
    try {
      if (wanted === undefined) {
        const admin = this.#admin;
        this.#admin = undefined;
        await admin?.close();
        return;
      }
      if (this.#admin === undefined) {
        // Loaded on first use: a process without an admin listener (every
        // cluster worker) never needs the metrics library or the dashboard.
        const { AdminServer } = await import('../admin/admin-server.js');
        if (this.#closing) return;
        this.#admin ??= new AdminServer(this.#adminSource(this), this.logger);
      }
      if (sameListen(this.#admin.listenConfig, wanted)) return;
      const address = await this.#admin.bind(wanted);
      this.logger.info({ admin: `${address.address}:${address.port}` }, `admin API on http://${address.address}:${address.port}/`);
    } catch (err) {
      if (starting) throw wanted === undefined ? err : new ListenError('admin.listen', wanted.host, wanted.port, err);
      const at = this.#admin?.address;
      this.logger.error(
        { err, admin: `${wanted?.host}:${wanted?.port}` },
        `admin API cannot listen on ${wanted?.host}:${wanted?.port}: ${(err as Error).message}; ${at ? `still on ${at.address}:${at.port}` : 'it is off'}`,
      );
    }
  }

  /** The traffic listener's current address and protocol (changes when a reload rebinds). */
  get listener(): { readonly address: AddressInfo; readonly protocol: 'http' | 'https' } {
    return { address: this.address, protocol: this.#traffic!.protocol };
  }

  /**
   * Builds a new generation from `config` beside the running one and swaps
   * it in; the old one drains, then closes. When `server.listen` changed, the
   * new listener is bound before the old one stops accepting. Throws —
   * leaving the running generation and listener untouched — when anything
   * fails (a plugin's create(), the bind); the failure is recorded in
   * `reloads`, and logging it is the caller's part. Logs one line per
   * applied reload: generation, what changed, duration.
   */
  async reload(config: LbConfig, trigger = 'api'): Promise<Generation> {
    return (await this.#prepare(config, trigger, undefined, undefined)).commit();
  }

  /**
   * Reads, validates and applies a config file. A plugin that fails to start
   * is reported like any other config problem: a ConfigError at its table's
   * file:line:col.
   */
  async reloadFile(file: string, trigger = 'api'): Promise<Generation> {
    let source: string;
    try {
      source = await readFile(file, 'utf8');
    } catch (err) {
      this.reloads.failed(err);
      throw err;
    }
    return this.reloadText(source, file, trigger);
  }

  /**
   * Validates and applies `source`, the text of `file` (relative plugin and
   * TLS paths resolve against its folder), as reloadFile does.
   */
  async reloadText(source: string, file: string, trigger = 'api'): Promise<Generation> {
    return (await this.prepareText(source, file, trigger)).commit();
  }

  /**
   * The first half of reloadText: validates `source` and builds its
   * generation — binding its listener when `server.listen` changed — without
   * putting it in service. Throws, leaving everything as it was and the
   * failure recorded in `reloads`, when reloadText would. `generation`
   * numbers the new generation (a cluster worker follows its primary's
   * numbering); default: the next number.
   */
  async prepareText(source: string, file: string, trigger = 'api', generation?: number): Promise<PreparedReload> {
    let config: LbConfig;
    try {
      config = await loadConfigText(source, file);
    } catch (err) {
      this.reloads.failed(err);
      throw err;
    }
    return this.#prepare(config, trigger, source, generation);
  }

  #prepare(config: LbConfig, trigger: string, source: string | undefined, generation: number | undefined): Promise<PreparedReload> {
    let decided!: () => void;
    const settled = new Promise<void>((resolve) => (decided = resolve));
    const prepared = this.#reloading
      .then(() => (this.#building = this.#build(config, trigger, generation, decided)))
      .catch((err: unknown) => {
        decided();
        const error = locatePluginFailure(err, config.file, source);
        this.reloads.failed(error);
        throw error;
      });
    this.#reloading = settled;
    return prepared;
  }

  async #build(config: LbConfig, trigger: string, id = this.#nextId, decided: () => void): Promise<PreparedReload> {
    if (this.#closing) throw new Error(NOT_APPLIED_SHUTTING_DOWN);
    const previous = this.generation;
    const started = performance.now();
    const next = await Generation.build(id, configForRole(config, this.role), this.#deps, previous);
    let bound: TrafficServer | undefined;
    try {
      // Shutdown began while plugins were created: nothing of this may outlive it.
      if (this.#closing) throw new Error(NOT_APPLIED_SHUTTING_DOWN);
      this.#onGeneration?.(next, this);
      if (this.#traffic !== undefined && listenerNeedsRebind(previous.config.server, config.server)) {
        bound = await this.#bind(next);
        if (this.#closing) throw new Error(NOT_APPLIED_SHUTTING_DOWN);
        // Until the commit, connections it accepts are served by the running
        // generation. (No request can have arrived yet: the listen callback
        // and this line run without an I/O turn between them.)
        bound.generation = previous;
      } else {
        // No listener here (a cluster primary): refuse what the workers'
        // listeners would. Or the running listener takes the new settings at
        // the commit: the certificates it will read must be readable now.
        checkListenerChange(previous.config, config);
        readCertificates(config);
      }
    } catch (err) {
      if (bound !== undefined) this.#retireListener(bound, 0, 'listener of a configuration not applied', 'debug');
      await next.close();
      throw err;
    }
    let decision: 'commit' | 'abort' | undefined;
    const prepared: PreparedReload = {
      generation: next,
      commit: async () => {
        if (decision !== undefined) throw new Error(`this reload was already ${decision === 'commit' ? 'committed' : 'aborted'}`);
        decision = 'commit';
        this.#prepared = undefined;
        try {
          return await this.#commit(previous, next, bound, trigger, started);
        } finally {
          decided();
        }
      },
      // Shutdown and the caller may both abort it.
      abort: async (problems) => {
        if (decision === 'abort') return;
        if (decision === 'commit') throw new Error('this reload was already committed');
        decision = 'abort';
        this.#prepared = undefined;
        try {
          await this.#abort(next, bound, problems);
        } finally {
          decided();
        }
      },
    };
    this.#prepared = prepared;
    return prepared;
  }

  async #commit(previous: Generation, next: Generation, bound: TrafficServer | undefined, trigger: string, started: number): Promise<Generation> {
    if (this.#closing) {
      await this.#abort(next, bound, [NOT_APPLIED_SHUTTING_DOWN]);
      throw new Error(NOT_APPLIED_SHUTTING_DOWN);
    }
    const config = next.config;
    const oldTraffic = this.#traffic;
    const clientLimit = this.#clientLimitFor(config);
    if (oldTraffic !== undefined && bound === undefined) {
      try {
        applyListenerSettings(oldTraffic, config.server, clientLimit);
      } catch (err) {
        // Readable when prepared, gone since: keep serving with what the listener has.
        this.logger.error({ err }, `server settings not applied to the listener (${(err as Error).message}); it keeps the previous ones until the next reload`);
      }
    }
    this.#nextId = next.id + 1;
    this.#generation = next;
    if (this.role !== 'traffic') this.health.sync(next);
    if (oldTraffic !== undefined) oldTraffic.generation = next;
    if (bound !== undefined && oldTraffic !== undefined) {
      bound.generation = next;
      this.#traffic = bound;
      this.#address = bound.server.address() as AddressInfo;
      // Connections the old listener accepted are served by the new generation.
      this.#retireListener(oldTraffic, previous.config.server.shutdownGrace, 'previous listener', 'info');
    }
    const report = this.reloads.applied(previous.config, next, Math.round(performance.now() - started), trigger);
    const previousLimit = this.#clientLimitFor(previous.config);
    if (clientLimit.max !== previousLimit.max || clientLimit.source !== previousLimit.source) this.#logClientLimit(clientLimit);
    // In a cluster the primary logs the one line per reload, once its workers have applied it.
    this.logger[this.role === 'standalone' ? 'info' : 'debug'](
      {
        generation: next.id,
        previous: previous.id,
        trigger,
        changes: report.changes,
        ms: report.ms,
        ...(bound !== undefined ? { listen: `${this.#address!.address}:${this.#address!.port}` } : {}),
      },
      `configuration generation ${next.id} is live (${report.summary}) in ${report.ms}ms`,
    );
    const retiring = previous
      .retire()
      .catch((err: unknown) => this.logger.error({ generation: previous.id, err }, `generation ${previous.id} did not retire cleanly`))
      .finally(() => this.#retiring.delete(retiring));
    this.#retiring.add(retiring);
    if (this.role !== 'traffic') await this.#syncAdmin(config, false);
    return next;
  }

  /** Undoes a prepare: the listener it bound lets go (what it accepted finishes), its generation closes. */
  async #abort(next: Generation, bound: TrafficServer | undefined, problems: readonly string[]): Promise<void> {
    this.reloads.refused(problems);
    // What it accepted in the meantime was served by the running generation and finishes there.
    if (bound !== undefined) this.#retireListener(bound, this.generation.config.server.shutdownGrace, 'listener of a configuration not applied', 'debug');
    await next.close();
  }

  /** A listener for `generation`'s address, bound beside the running one. */
  async #bind(generation: Generation): Promise<TrafficServer> {
    const { host, port } = generation.config.server.listen;
    checkListenerChange(this.generation.config, generation.config);
    let traffic: TrafficServer;
    try {
      traffic = new TrafficServer(generation, this.logger, this.#clientLimitFor(generation.config), this.#clientCounts, this.#connectionsHandedOver);
      await traffic.listen();
    } catch (err) {
      const running = this.address;
      throw new Error(
        `cannot listen on ${host}:${port}: ${(err as Error).message}; still listening on ${running.address}:${running.port} — free the address or choose another in server.listen`,
        { cause: err },
      );
    }
    return traffic;
  }

  /**
   * A listener being let go (`what`, for logs) stops accepting now; its
   * connections finish, and are cut past `graceMs`. Its keep-alive clients
   * are moved off it: new requests on it are answered with `Connection:
   * close`, and connections that fall idle are closed (Node closes only the
   * ones idle at close()).
   */
  #retireListener(traffic: TrafficServer, graceMs: number, what: string, level: 'info' | 'debug'): void {
    const server = traffic.server;
    const where = `${(server.address() as AddressInfo).address}:${(server.address() as AddressInfo).port}`;
    server.prependListener('request', endAfterResponse);
    server.prependListener('checkContinue', endAfterResponse);
    const closed = traffic.close();
    const sweep = setInterval(() => server.closeIdleConnections(), 100);
    const done = (async () => {
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<'expired'>((resolve) => (timer = setTimeout(resolve, graceMs, 'expired')));
      const outcome = await Promise.race([closed, expired]);
      clearTimeout(timer);
      if (outcome === 'expired') {
        const cut = traffic.destroyConnections();
        this.logger.warn({ listen: where, connections: cut, graceMs }, `${what} ${where}: cut ${cut} connection(s) still open ${graceMs}ms after it was let go`);
        await closed;
      }
      this.logger[level]({ listen: where }, `${what} ${where} closed: its connections finished`);
    })().finally(() => {
      clearInterval(sweep);
      this.#retiredListeners.delete(done);
    });
    this.#retiredListeners.add(done);
  }

  /** Waits for replaced listeners and generations still draining (shutdown). */
  async #settleRetired(): Promise<void> {
    await Promise.all([...this.#retiredListeners, ...this.#retiring]);
  }

  /**
   * Graceful shutdown: stop accepting now, let in-flight requests finish,
   * and past `graceMs` cut what is left.
   */
  close(graceMs = this.#generation?.config.server.shutdownGrace ?? 0): Promise<void> {
    this.#closing ??= this.#close(graceMs);
    return this.#closing;
  }

  async #close(graceMs: number): Promise<void> {
    this.health.stop();
    // A prepared reload that nobody will decide now: undo it, its listener too.
    await this.#prepared?.abort([NOT_APPLIED_SHUTTING_DOWN]);
    // /healthz fails from now on, so whatever balances in front stops sending here.
    const admin = this.#admin;
    this.#admin = undefined;
    await admin?.close();
    const traffic = this.#traffic;
    if (traffic) {
      const closed = traffic.close();
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<'expired'>((resolve) => (timer = setTimeout(() => resolve('expired'), graceMs)));
      const outcome = await Promise.race([closed.then(() => 'closed' as const), expired]);
      clearTimeout(timer);
      if (outcome === 'expired') {
        const cut = traffic.destroyConnections();
        this.logger.warn({ connections: cut, graceMs }, `shutdown grace of ${graceMs}ms expired: cut ${cut} connection(s)`);
        await closed;
      }
    }
    // A reload still being built (plugins being created) undoes itself once it sees #closing, its listener included; its pools must be gone before the registry closes.
    await this.#building?.catch(() => {});
    await this.#settleRetired();
    this.#passive.close();
    await this.#generation?.close();
    await this.registry.closeAll();
  }
}
