/**
 * One running Switchyard: the backend registry (which outlives
 * generations), the current generation, the traffic listener, and the
 * operations on them: start, reload, shut down.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { pino } from 'pino';
import { loadConfigText } from '../config/load.js';
import type { LbConfig } from '../config/types.js';
import type { Logger } from '../plugin/types.js';
import type { BackendState } from '../pool/backend.js';
import { BackendRegistry } from '../pool/backend-registry.js';
import { PassiveDetector, type PassiveDownReport } from '../pool/passive-detector.js';
import { createForwarder } from '../proxy/forward.js';
import { Generation, type GenerationDeps } from './generation.js';
import { TrafficServer } from './traffic-server.js';
import { ReloadHistory, locatePluginFailure } from './reload-history.js';
import { applyListenerSettings, listenerNeedsRebind, sameListen } from './listener-settings.js';
import { HealthScheduler } from '../health/health-scheduler.js';
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
export type SwitchyardRole = 'standalone' | 'control' | 'traffic';

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

/** Throws when the certificate or key a config names cannot be read (what a listener would fail on). */
function readCertificates(config: LbConfig): void {
  if (config.server.tls === undefined) return;
  readFileSync(config.server.tls.cert);
  readFileSync(config.server.tls.key);
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
  /** Set while a state decided elsewhere is applied: its change is logged where it was decided. */
  #applyingRemoteState = false;
  #traffic: TrafficServer | undefined;
  #address: AddressInfo | undefined;
  #closing: Promise<void> | undefined;
  /** Reloads run one at a time, in the order they were asked for. */
  #reloading: Promise<unknown> = Promise.resolve();
  /** Listeners replaced by a rebind that still have connections finishing. */
  readonly #retiredListeners = new Set<Promise<void>>();
  /** Replaced generations that are still draining. */
  readonly #retiring = new Set<Promise<void>>();
  /** Applied and failed reloads, for logs, /status and /metrics. */
  readonly reloads = new ReloadHistory();
  /** Active health checks: one probe loop per backend URL, following the serving generation. */
  readonly health: HealthScheduler;
  readonly startedAt = new Date();
  /** The admin listener (/healthz, /status, /metrics, dashboard) while `[admin] listen` is set. */
  #admin: AdminServer | undefined;

  constructor(options: StartOptions = {}) {
    this.logger = options.logger ?? (pino({ name: 'switchyard' }) as unknown as RootLogger);
    this.role = options.role ?? 'standalone';
    this.#nextId = options.generation ?? 1;
    this.#onGeneration = options.onGeneration;
    this.#adminSource = options.adminSource ?? ((lb) => lb);
    this.health = new HealthScheduler(this.registry, this.logger);
    this.#passive = new PassiveDetector(this.registry, (backend) => this.health.checkedBy(backend.url) !== undefined, options.onPassiveDown);
    this.#deps = { registry: this.registry, logger: this.logger, forward: createForwarder(this.#passive.onFailure) };
    // The one log line per state change, whoever made it (active checks, passive detection).
    this.registry.on('change', ({ backend, from, to, reason }) => {
      const pool = this.#poolsOf(backend.url);
      const level = this.#applyingRemoteState ? 'debug' : 'info';
      this.logger[level]({ pool, backend: backend.url, from, to, reason }, `pool ${pool} backend ${backend.url}: ${from} → ${to} (${reason})`);
    });
  }

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
    this.#generation = await Generation.build(this.#nextId++, config, this.#deps);
    this.#onGeneration?.(this.#generation, this);
    if (this.role === 'control') {
      this.health.sync(this.#generation);
      this.logger.debug({ generation: this.#generation.id, config: config.file }, `generation ${this.#generation.id} built; no traffic listener in this process`);
      await this.#syncAdmin(config, true);
      return;
    }
    if (this.role === 'standalone') this.health.sync(this.#generation);
    this.#traffic = new TrafficServer(this.#generation, this.logger);
    this.#address = await this.#traffic.listen();
    // A worker's primary says once for the cluster where it listens.
    this.logger[this.role === 'traffic' ? 'debug' : 'info'](
      { listen: `${this.#address.address}:${this.#address.port}`, generation: this.#generation.id, config: config.file },
      `Switchyard listening on ${this.#traffic.protocol}://${this.#address.address}:${this.#address.port}`,
    );
    if (this.role === 'standalone') await this.#syncAdmin(config, true);
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
      if (starting) throw err;
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
  reload(config: LbConfig, trigger = 'api'): Promise<Generation> {
    return this.#apply(config, trigger, undefined, undefined);
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
   * TLS paths resolve against its folder), as reloadFile does. `generation`
   * numbers the new generation (a cluster worker follows its primary's
   * numbering); default: the next number.
   */
  async reloadText(source: string, file: string, trigger = 'api', generation?: number): Promise<Generation> {
    let config: LbConfig;
    try {
      config = await loadConfigText(source, file);
    } catch (err) {
      this.reloads.failed(err);
      throw err;
    }
    return this.#apply(config, trigger, source, generation);
  }

  #apply(config: LbConfig, trigger: string, source: string | undefined, generation: number | undefined): Promise<Generation> {
    const run = this.#reloading.then(() => this.#reload(config, trigger, generation)).catch((err: unknown) => {
      const error = locatePluginFailure(err, config.file, source);
      this.reloads.failed(error);
      throw error;
    });
    this.#reloading = run.catch(() => {});
    return run;
  }

  async #reload(config: LbConfig, trigger: string, id = this.#nextId): Promise<Generation> {
    if (this.#closing) throw new Error('Switchyard is shutting down; the configuration was not applied');
    const previous = this.generation;
    const started = performance.now();
    const next = await Generation.build(id, config, this.#deps, previous);
    const oldTraffic = this.#traffic;
    let traffic = oldTraffic;
    try {
      this.#onGeneration?.(next, this);
      if (traffic === undefined) {
        // No listener here (a cluster primary): refuse what the workers' listeners would refuse.
        checkListenerChange(previous.config, config);
        readCertificates(config);
      } else if (listenerNeedsRebind(previous.config.server, config.server)) {
        traffic = await this.#bind(next);
      } else {
        applyListenerSettings(traffic, config.server);
      }
    } catch (err) {
      await next.close();
      throw err;
    }
    this.#nextId = id + 1;
    this.#generation = next;
    if (this.role !== 'traffic') this.health.sync(next);
    if (traffic !== undefined) traffic.generation = next;
    if (traffic !== undefined && oldTraffic !== undefined && traffic !== oldTraffic) {
      this.#traffic = traffic;
      this.#address = traffic.server.address() as AddressInfo;
      // Connections the old listener accepted are served by the new generation.
      oldTraffic.generation = next;
      this.#retireListener(oldTraffic, previous.config.server.shutdownGrace);
    }
    const report = this.reloads.applied(previous.config, next, Math.round(performance.now() - started), trigger);
    // In a cluster the primary logs the one line per reload, once its workers have applied it.
    this.logger[this.role === 'standalone' ? 'info' : 'debug'](
      {
        generation: next.id,
        previous: previous.id,
        trigger,
        changes: report.changes,
        ms: report.ms,
        ...(traffic !== oldTraffic && traffic !== undefined ? { listen: `${this.#address!.address}:${this.#address!.port}` } : {}),
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

  /** A listener for `generation`'s address, bound before the running one is let go. */
  async #bind(generation: Generation): Promise<TrafficServer> {
    const { host, port } = generation.config.server.listen;
    checkListenerChange(this.generation.config, generation.config);
    let traffic: TrafficServer;
    try {
      traffic = new TrafficServer(generation, this.logger);
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
   * The old listener stops accepting now; its connections finish, and are
   * cut past `graceMs`. Its keep-alive clients are moved off it: new
   * requests on it are answered with `Connection: close`, and connections
   * that fall idle are closed (Node closes only the ones idle at close()).
   */
  #retireListener(traffic: TrafficServer, graceMs: number): void {
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
        this.logger.warn({ listen: where, connections: cut, graceMs }, `previous listener ${where}: cut ${cut} connection(s) still open ${graceMs}ms after the rebind`);
        await closed;
      }
      this.logger.info({ listen: where }, `previous listener ${where} closed: its connections finished`);
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
    await this.#settleRetired();
    this.#passive.close();
    await this.#generation?.close();
    await this.registry.closeAll();
  }
}
