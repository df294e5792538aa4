/**
 * `lb run` with `workers` > 1: this process is the cluster's primary and
 * serves no traffic. It owns what must happen once, however many workers
 * there are:
 *   - reading and validating lb.toml (at start, on every save, on SIGHUP),
 *     then handing the validated text to every worker;
 *   - active health checks and the passive-detection cooldown — one probe
 *     per backend per interval — pushing every state change to the workers;
 *   - the admin listener, summing the workers' counters;
 *   - signals and graceful shutdown, and restarting a worker that crashed.
 * The workers (worker.ts) share the traffic listener through node:cluster.
 *
 * Scheduling: SCHED_NONE — every worker accepts on the shared socket and the
 * kernel hands each connection to one of them; the primary moves no sockets,
 * so it is never on the path of a connection (SCHED_RR would accept every
 * connection in the primary and pass it over IPC). NODE_CLUSTER_SCHED_POLICY
 * = "rr" overrides it.
 */
import cluster from 'node:cluster';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import type { LbConfig } from '../config/types.js';
import type { Backend } from '../pool/backend.js';
import { ConfigWatcher } from '../server/config-watcher.js';
import { PLUGIN_DEADLINES } from '../server/generation.js';
import { locatePluginFailure, problemsOf } from '../server/reload-history.js';
import { Switchyard, type RootLogger } from '../server/switchyard.js';
import { ClusterAdminSource } from './aggregate-source.js';
import type { BackendStateUpdate, PrimaryMessage } from './messages.js';
import { workerCount } from './worker-count.js';
import { WorkerSlot, type SlotEvents, type WorkerExit } from './worker-slot.js';

export interface PrimaryOptions {
  readonly file: string;
  readonly watch: boolean;
  readonly logLevel: string;
  readonly logger: RootLogger;
  /** The configuration `lb run` starts from, validated, and the text it was read from. */
  readonly config: LbConfig;
  readonly source: string;
}

const WORKER_MAIN = fileURLToPath(new URL('./worker-main.js', import.meta.url));
/** How long `lb run` waits for every worker to serve before it gives up. */
const START_DEADLINE_MS = 30_000;
/** A worker process that exits sooner than this after starting counts toward the restart backoff. */
const STABLE_AFTER_MS = 10_000;
const BACKOFF_FIRST_MS = 250;
const BACKOFF_MAX_MS = 30_000;
/** Past shutdown_grace, how long a stopping worker gets to exit before it is killed. */
const EXIT_MARGIN_MS = 2_000;
/** How long a reload waits for each worker's answer: building a generation may take up to the plugin create() deadline. */
const RELOAD_DEADLINE_MS = PLUGIN_DEADLINES.createMs + 5_000;

function stateOf(backend: Backend): BackendStateUpdate {
  return { url: backend.url, state: backend.state, reason: backend.reason, changedAt: backend.changedAt };
}

export class ClusterPrimary {
  readonly #options: PrimaryOptions;
  readonly #logger: RootLogger;
  readonly #slots: WorkerSlot[] = [];
  /** Slots told to stop for good (fewer workers): not restarted, removed once exited. */
  readonly #retiring = new Set<WorkerSlot>();
  readonly #restartTimers = new Map<WorkerSlot, NodeJS.Timeout>();
  #lb: Switchyard | undefined;
  #admin: ClusterAdminSource | undefined;
  /** The text of the configuration serving now and its generation: what a (re)started worker gets. */
  #current: { source: string; generation: number };
  #reloading: Promise<void> = Promise.resolve();
  #watcher: ConfigWatcher | undefined;
  /** Until every first worker serves, an exit fails the start instead of being restarted. */
  #starting = true;
  #shuttingDown = false;

  readonly #events: SlotEvents = {
    hello: (slot) => {
      const lb = this.#lb!;
      slot.send({
        type: 'config',
        file: lb.generation.config.file,
        source: this.#current.source,
        generation: this.#current.generation,
        states: this.#states(),
      });
    },
    passiveDown: (_slot, url, pool, reason) => this.#lb?.passiveDown(url, pool, reason),
    exit: (slot, exit) => this.#onExit(slot, exit),
  };

  constructor(options: PrimaryOptions) {
    this.#options = options;
    this.#logger = options.logger;
    this.#current = { source: options.source, generation: 1 };
  }

  /** Starts the control plane and every worker; throws (leaving nothing running) when any of them cannot start. */
  async start(): Promise<void> {
    const { config, source, logger } = this.#options;
    if (process.env.NODE_CLUSTER_SCHED_POLICY === undefined) cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ exec: WORKER_MAIN, args: [], silent: false });
    try {
      this.#lb = await Switchyard.start(config, {
        logger,
        role: 'control',
        adminSource: (lb) => (this.#admin = new ClusterAdminSource(lb, () => this.#slots)),
      });
    } catch (err) {
      throw locatePluginFailure(err, config.file, source);
    }
    const lb = this.#lb;
    this.#current = { source, generation: lb.generation.id };
    lb.registry.on('change', ({ backend }) => this.#broadcast({ type: 'backend-state', ...stateOf(backend) }));

    const count = workerCount(config.server.workers);
    for (let id = 1; id <= count; id++) this.#fork(new WorkerSlot(id, this.#events, this.#options.logLevel));
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.all(this.#slots.map((slot) => slot.ready())),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`the workers did not start within ${START_DEADLINE_MS / 1000}s`)), START_DEADLINE_MS);
        }),
      ]);
    } catch (err) {
      this.#shuttingDown = true;
      for (const slot of this.#slots) slot.kill();
      await Promise.all(this.#slots.map((slot) => slot.exited()));
      await lb.close(0);
      throw err;
    } finally {
      clearTimeout(timer);
    }
    this.#starting = false;
    const first = this.#slots[0]!;
    const pids = this.#slots.map((slot) => slot.pid);
    logger.info(
      { listen: first.listen, generation: lb.generation.id, config: config.file, workers: count, pids },
      `Switchyard listening on ${first.protocol}://${first.listen} with ${count} worker processes (pids ${pids.join(', ')})`,
    );
  }

  /** `lb run` until a signal: start, watch lb.toml, reload on save or SIGHUP, shut down on SIGTERM/SIGINT. */
  async run(): Promise<void> {
    await this.start();
    const { file, watch } = this.#options;
    if (watch) {
      this.#watcher = new ConfigWatcher(file, () => this.reload('file saved', false));
      await this.#watcher.start();
      // A save between reading the file at startup and the watcher being ready raised no event.
      this.reload('file saved', false);
      this.#logger.info({ watching: file }, `watching ${file} for changes`);
    }
    process.on('SIGHUP', () => this.reload('SIGHUP', true));
    process.on('SIGTERM', () => this.shutdown('SIGTERM'));
    process.on('SIGINT', () => this.shutdown('SIGINT'));
  }

  /**
   * Reads lb.toml once, validates and builds it here (once for the whole
   * cluster), then hands the same text to every worker and logs one line
   * when they have applied it. A file that cannot be applied is logged here
   * once and reaches no worker. `force` (SIGHUP) reloads unchanged files too.
   */
  reload(trigger: string, force: boolean): void {
    this.#reloading = this.#reloading
      .then(() => this.#reload(trigger, force))
      .catch((err: unknown) => this.#logger.error({ err, trigger }, `reload (${trigger}) failed: ${(err as Error).message}`));
  }

  async #reload(trigger: string, force: boolean): Promise<void> {
    const lb = this.#lb!;
    if (this.#shuttingDown) return;
    const { file } = this.#options;
    const logger = this.#logger;
    const previous = lb.generation.id;
    const started = performance.now();
    let source: string;
    try {
      const bytes = await readFile(file);
      if (!force) {
        // Saving in place truncates first: an empty file is a save in progress.
        if (bytes.length === 0) {
          logger.debug({ trigger }, 'lb.toml is empty, probably mid-save: waiting for the next change');
          return;
        }
        if (createHash('sha256').update(bytes).digest('hex') === lb.generation.config.hash) {
          logger.debug({ trigger }, 'lb.toml saved without changes: nothing to reload');
          return;
        }
      }
      source = bytes.toString('utf8');
      await lb.reloadText(source, file, trigger);
    } catch (err) {
      const problems = problemsOf(err);
      logger.error(
        { trigger, generation: lb.generation.id, problems },
        `configuration not applied, still serving generation ${lb.generation.id}:\n${problems.join('\n')}`,
      );
      return;
    }
    const generation = lb.generation;
    this.#current = { source, generation: generation.id };
    const message: PrimaryMessage = {
      type: 'reload',
      file: generation.config.file,
      source,
      generation: generation.id,
      trigger,
      states: this.#states(),
    };
    const results = await Promise.all(this.#slots.filter((slot) => slot.alive).map((slot) => slot.reload(message, RELOAD_DEADLINE_MS)));
    const report = lb.reloads.lastApplied!;
    const ms = Math.round(performance.now() - started);
    const failed = results.filter((r) => !r.ok);
    const fields = { generation: generation.id, previous, trigger, changes: report.changes, ms, workers: results.length };
    if (failed.length === 0) {
      logger.info(fields, `configuration generation ${generation.id} is live (${report.summary}) in ${ms}ms on ${results.length} workers`);
    } else {
      const lines = failed.map(
        (r) => `worker ${r.slot.id} could not apply it${r.serving ? ` and still serves generation ${r.serving}` : ''}: ${r.problems.join('; ')}`,
      );
      logger.error(
        { ...fields, failed: failed.map((r) => ({ worker: r.slot.id, serving: r.serving, problems: r.problems })) },
        `configuration generation ${generation.id} (${report.summary}) is live on ${results.length - failed.length} of ${results.length} workers:\n${lines.join('\n')}`,
      );
    }
    this.#resize(workerCount(generation.config.server.workers));
  }

  /** Starts or stops workers to match `server.workers` after a reload. */
  #resize(wanted: number): void {
    if (this.#shuttingDown) return;
    const active = this.#slots.filter((slot) => !this.#retiring.has(slot));
    if (wanted === active.length) return;
    if (wanted > active.length) {
      const used = new Set(active.map((slot) => slot.id));
      const added: number[] = [];
      for (let id = 1; added.length < wanted - active.length; id++) if (!used.has(id)) added.push(id);
      this.#logger.info({ workers: wanted, starting: added }, `server.workers is now ${wanted}: starting worker ${added.join(', ')}`);
      for (const id of added) {
        const slot = new WorkerSlot(id, this.#events, this.#options.logLevel);
        this.#fork(slot);
        slot.ready().then(
          () => this.#logger.info({ worker: slot.id, workerPid: slot.pid, generation: slot.generation }, `worker ${slot.id} (pid ${slot.pid}) serving generation ${slot.generation}`),
          () => {},
        );
      }
      return;
    }
    const leaving = [...active].sort((a, b) => b.id - a.id).slice(0, active.length - wanted);
    this.#logger.info(
      { workers: wanted, stopping: leaving.map((slot) => slot.id) },
      `server.workers is now ${wanted}: stopping worker ${leaving.map((slot) => slot.id).join(', ')} once in-flight requests finish${wanted === 1 ? ' (one worker process stays; restart lb to serve from a single process)' : ''}`,
    );
    const grace = this.#lb!.generation.config.server.shutdownGrace;
    for (const slot of leaving) {
      this.#retiring.add(slot);
      clearTimeout(this.#restartTimers.get(slot));
      this.#restartTimers.delete(slot);
      void slot.stop(grace, EXIT_MARGIN_MS).then(() => this.#remove(slot));
      if (!slot.alive) this.#remove(slot);
    }
  }

  #remove(slot: WorkerSlot): void {
    const i = this.#slots.indexOf(slot);
    if (i !== -1) this.#slots.splice(i, 1);
    this.#retiring.delete(slot);
  }

  #fork(slot: WorkerSlot): void {
    if (!this.#slots.includes(slot)) {
      this.#slots.push(slot);
      this.#slots.sort((a, b) => a.id - b.id);
    }
    slot.fork();
  }

  #onExit(slot: WorkerSlot, exit: WorkerExit): void {
    this.#admin?.retire(exit.counters);
    if (exit.expected || this.#starting || this.#shuttingDown || this.#retiring.has(slot)) return;
    slot.quickCrashes = exit.ranMs < STABLE_AFTER_MS ? slot.quickCrashes + 1 : 1;
    const delay = slot.quickCrashes <= 1 ? 0 : Math.min(BACKOFF_FIRST_MS * 2 ** (slot.quickCrashes - 2), BACKOFF_MAX_MS);
    slot.state = 'restarting';
    const how = exit.signal ?? `exit code ${exit.code}`;
    const when =
      delay === 0 ? 'restarting it now' : `it exited ${slot.quickCrashes} times in a row within ${STABLE_AFTER_MS / 1000}s of starting: restarting it in ${delay}ms`;
    const why = slot.startProblems ? `; it could not start:\n${slot.startProblems.join('\n')}` : '';
    this.#logger.error(
      { worker: slot.id, workerPid: exit.pid, code: exit.code, signal: exit.signal, ranMs: exit.ranMs, restartInMs: delay },
      `worker ${slot.id} (pid ${exit.pid}) exited unexpectedly (${how}) after ${(exit.ranMs / 1000).toFixed(1)}s; ${when}${why}`,
    );
    const timer = setTimeout(() => {
      this.#restartTimers.delete(slot);
      if (this.#shuttingDown || this.#retiring.has(slot)) return;
      slot.restarts++;
      this.#fork(slot);
      slot.ready().then(
        () =>
          this.#logger.info(
            { worker: slot.id, workerPid: slot.pid, generation: slot.generation, restarts: slot.restarts },
            `worker ${slot.id} restarted (pid ${slot.pid}), serving generation ${slot.generation}`,
          ),
        // Its exit is logged (and handled) by #onExit.
        () => {},
      );
    }, delay);
    this.#restartTimers.set(slot, timer);
  }

  /**
   * Stops accepting (every worker closes its listener), lets in-flight
   * requests finish within shutdown_grace, and exits 0 once every worker has
   * exited. A second signal kills the workers and exits at once.
   */
  shutdown(signal: 'SIGTERM' | 'SIGINT'): void {
    const exitCode = 128 + os.constants.signals[signal];
    if (this.#shuttingDown) {
      this.#logger.warn({ signal }, `${signal} again: killing the workers and exiting now without waiting for in-flight requests`);
      for (const slot of this.#slots) slot.kill();
      process.exit(exitCode);
    }
    this.#shuttingDown = true;
    this.#logger.info({ signal }, `${signal}: shutting down gracefully (send it again to exit at once)`);
    void (async () => {
      for (const timer of this.#restartTimers.values()) clearTimeout(timer);
      this.#restartTimers.clear();
      await this.#watcher?.close();
      const lb = this.#lb!;
      const grace = lb.generation.config.server.shutdownGrace;
      await Promise.all([...this.#slots.map((slot) => slot.stop(grace, EXIT_MARGIN_MS)), lb.close()]);
      this.#logger.info('shutdown complete');
      process.exit(0);
    })();
  }

  #states(): BackendStateUpdate[] {
    return this.#lb!.registry.all().map(stateOf);
  }

  #broadcast(message: PrimaryMessage): void {
    for (const slot of this.#slots) slot.send(message);
  }
}

/** `lb run` as a cluster primary (`workers` > 1). */
export async function runClusterPrimary(options: PrimaryOptions): Promise<void> {
  await new ClusterPrimary(options).run();
}
