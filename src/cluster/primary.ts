/**
 * `lb run` with `workers` > 1: this process is the cluster's primary and
 * serves no traffic. It owns what must happen once, however many workers
 * there are:
 *   - reading and validating lb.toml (at start, on every save, on SIGHUP),
 *     then applying it on every worker or on none (two phases: each worker
 *     prepares it, then all commit it, or all abort it when one could not);
 *   - active health checks and the passive-detection cooldown — one probe
 *     per backend per interval — pushing every state change to the workers;
 *   - the admin listener, summing the workers' counters;
 *   - signals and graceful shutdown, and restarting a worker that crashed;
 *   - stdout: the workers' output reaches it through this process (worker-output.ts).
 * The workers (worker.ts) share the traffic listener through node:cluster.
 *
 * Scheduling: SCHED_NONE — every worker accepts on the shared socket and the
 * kernel hands each connection to one of them; the primary moves no sockets,
 * so it is never on the path of a connection (SCHED_RR would accept every
 * connection in the primary and pass it over IPC). NODE_CLUSTER_SCHED_POLICY
 * = "rr" overrides it.
 */
import cluster from 'node:cluster';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import type { LbConfig } from '../config/types.js';
import type { Backend } from '../pool/backend.js';
import { ConfigWatcher } from '../server/config-watcher.js';
import { ConfigSaves, readConfigSave, type ConfigSave } from '../server/config-saves.js';
import { PLUGIN_DEADLINES } from '../server/generation.js';
import { exitProcess } from '../server/process-log.js';
import { locatePluginFailure, problemsOf } from '../server/reload-history.js';
import { Switchyard, type PreparedReload, type RootLogger } from '../server/switchyard.js';
import { sameListen } from '../server/listener-settings.js';
import { ClusterAdminSource } from './aggregate-source.js';
import { probeListen } from './listen-probe.js';
import type { BackendStateUpdate, PrepareMessage, PrimaryMessage } from './messages.js';
import { workerCount } from './worker-count.js';
import { WorkerSlot, type SlotEvents, type WorkerAnswer, type WorkerExit } from './worker-slot.js';
import { relayWorkerOutput } from './worker-output.js';
import type { EarlySignals } from '../server/early-signals.js';

export interface PrimaryOptions {
  readonly file: string;
  readonly watch: boolean;
  readonly logLevel: string;
  readonly logger: RootLogger;
  /** The configuration `lb run` starts from, validated, and the text it was read from. */
  readonly config: LbConfig;
  readonly source: string;
  /** SIGTERM, SIGINT and SIGHUP held since `lb run` began, until this process can act on them. */
  readonly signals: EarlySignals;
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
/** How long a reload waits for each worker to prepare it: building a generation may take up to the plugin create() deadline. */
const RELOAD_DEADLINE_MS = PLUGIN_DEADLINES.createMs + 5_000;
/** How long a reload waits for each worker to say it serves what it prepared (a swap: no I/O). */
const COMMIT_DEADLINE_MS = 5_000;

function stateOf(backend: Backend): BackendStateUpdate {
  return { url: backend.url, state: backend.state, reason: backend.reason, changedAt: backend.changedAt };
}

/**
 * The problems of the workers that could not take a reload, each once: a
 * problem every worker taking part had (the same config problem, the same
 * busy address) as it is, any other prefixed with the workers that had it.
 */
export function refusalProblems(answers: readonly WorkerAnswer[]): string[] {
  const workersBy = new Map<string, number[]>();
  for (const answer of answers) {
    if (answer.ok) continue;
    for (const problem of answer.problems) {
      const ids = workersBy.get(problem);
      if (ids === undefined) workersBy.set(problem, [answer.slot.id]);
      else ids.push(answer.slot.id);
    }
  }
  return [...workersBy].map(([problem, ids]) => (ids.length === answers.length ? problem : `worker ${ids.join(', ')}: ${problem}`));
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
  /**
   * Set while a reload is being decided. A worker process that starts
   * meanwhile takes no part in it: it gets its configuration once the
   * reload is decided, the one in service then.
   */
  #deciding: Promise<void> | undefined;
  /** Numbers the reloads the workers are asked to prepare. */
  #nextReload = 1;
  /** Which file events are saves to apply (one save reported twice is refused once). */
  readonly #saves = new ConfigSaves();
  #watcher: ConfigWatcher | undefined;
  /** Until every first worker serves, an exit fails the start instead of being restarted. */
  #starting = true;
  #shuttingDown = false;

  readonly #events: SlotEvents = {
    hello: (slot) => void this.#configure(slot),
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
    // Each worker's stdout and stderr are pipes this process copies to its
    // own (worker-output.ts): inherited, they would make its stdout blocking.
    cluster.setupPrimary({ exec: WORKER_MAIN, args: [], stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    cluster.on('fork', relayWorkerOutput);
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
    const { file, watch, signals } = this.#options;
    if (watch) this.#watcher = new ConfigWatcher(file, () => this.reload('file saved', false), this.#logger);
    // Before the watcher starts: the workers serve from here on, and a signal must find the graceful path.
    signals.handOver(
      (signal) => this.shutdown(signal),
      () => this.reload('SIGHUP', true),
    );
    if (this.#watcher !== undefined) {
      await this.#watcher.start();
      // A save between reading the file at startup and the watcher being ready raised no event.
      this.reload('file saved', false);
      if (!this.#shuttingDown) this.#logger.info({ watching: file }, `watching ${file} for changes`);
    }
  }

  /**
   * Reads lb.toml once and validates it here (once for the whole cluster),
   * then applies it on every worker or on none: each worker serving prepares
   * it (builds its generation, binds a changed listener); only when all of
   * them have does any of them — and this process — put it in service.
   * A configuration that cannot be applied is logged here once, with every
   * worker's reason, and changes nothing anywhere. `force` (SIGHUP) reloads
   * unchanged files too. Reloads run one at a time, in the order they came.
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
    let save: ConfigSave;
    try {
      save = await readConfigSave(file);
      const notReload = force ? undefined : this.#saves.whyNotReload(save, lb.generation.config.hash);
      if (notReload !== undefined) {
        logger.debug({ trigger }, notReload);
        return;
      }
    } catch (err) {
      this.#notApplied(trigger, problemsOf(err), []);
      return;
    }
    let decided!: () => void;
    this.#deciding = new Promise<void>((resolve) => (decided = resolve));
    try {
      this.#saves.decided(save, await this.#apply(save.bytes.toString('utf8'), trigger));
    } finally {
      this.#deciding = undefined;
      decided();
    }
  }

  /** Applies `source` everywhere or nowhere; true when applied. */
  async #apply(source: string, trigger: string): Promise<boolean> {
    const lb = this.#lb!;
    const started = performance.now();
    const previous = lb.generation.id;
    let prepared: PreparedReload;
    try {
      prepared = await lb.prepareText(source, this.#options.file, trigger);
    } catch (err) {
      this.#notApplied(trigger, problemsOf(err), []);
      return false;
    }
    const generation = prepared.generation;
    const refused = await this.#tryNewAddress(lb.generation.config, generation.config);
    if (refused !== undefined) {
      await prepared.abort([refused]);
      this.#notApplied(trigger, [refused], []);
      return false;
    }
    await this.#settleStarting();
    // Every worker that has its configuration and serves (or will): a stopping one serves nothing new.
    const takingPart = this.#slots.filter((slot) => slot.alive && slot.configured && slot.state !== 'stopping');
    const reload = this.#nextReload++;
    const message: PrepareMessage = {
      type: 'prepare',
      reload,
      file: generation.config.file,
      source,
      generation: generation.id,
      trigger,
      states: this.#states(),
    };
    // The processes that prepared it: a slot whose process is replaced meanwhile has nothing to commit.
    const preparedBy = new Map(takingPart.map((slot) => [slot, slot.pid]));
    const answers = await Promise.all(takingPart.map((slot) => slot.prepare(message, RELOAD_DEADLINE_MS)));
    const refusals = answers.filter((answer) => !answer.ok);
    if (refusals.length > 0 || this.#shuttingDown) {
      for (const slot of takingPart) slot.abort(reload, generation.id);
      const problems = this.#shuttingDown ? ['lb is shutting down'] : refusalProblems(answers);
      await prepared.abort(problems);
      if (!this.#shuttingDown) this.#notApplied(trigger, problems, refusals);
      return false;
    }

    // Every worker has it ready: from here on it is the configuration in service, and what a (re)started worker gets.
    const before = this.#current;
    this.#current = { source, generation: generation.id };
    try {
      await prepared.commit();
    } catch (err) {
      // Not live anywhere: every worker holding it must hear so, or it waits and no later reload starts there.
      this.#current = before;
      for (const slot of takingPart) slot.abort(reload, generation.id);
      this.#notApplied(trigger, problemsOf(err), []);
      return false;
    }
    const commits = await Promise.all(
      takingPart.map((slot) =>
        slot.pid === preparedBy.get(slot)
          ? slot.commit(reload, generation.id, COMMIT_DEADLINE_MS)
          : Promise.resolve<WorkerAnswer>({ slot, ok: false, answered: false, problems: ['its process exited after preparing'] }),
      ),
    );
    const report = lb.reloads.lastApplied!;
    const ms = Math.round(performance.now() - started);
    const fields = { generation: generation.id, previous, trigger, changes: report.changes, ms, workers: takingPart.length };
    const live = `configuration generation ${generation.id} is live (${report.summary}) in ${ms}ms on ${takingPart.length} workers`;
    const silent = commits.filter((answer) => !answer.ok);
    if (silent.length === 0) {
      this.#logger.info(fields, live);
    } else {
      // Prepared, then gone before it could serve it: its restart starts from this generation.
      this.#logger.warn(
        { ...fields, unconfirmed: silent.map((a) => ({ worker: a.slot.id, problems: a.problems })) },
        `${live}; not confirmed by ${silent.map((a) => `worker ${a.slot.id} (${a.problems.join('; ')})`).join(', ')}, which starts from it when restarted`,
      );
    }
    this.#resize(workerCount(generation.config.server.workers));
    return true;
  }

  /**
   * When `next` moves the traffic listener, whether this process can listen
   * on its address (listen-probe.ts: a worker that cannot would leak a
   * socket here and there). Returns the problem, worded as a worker's bind
   * failure is, or undefined when the address is free or unchanged.
   */
  async #tryNewAddress(running: LbConfig, next: LbConfig): Promise<string | undefined> {
    const { host, port } = next.server.listen;
    // Port 0 is any free port: never taken.
    if (port === 0 || sameListen(running.server.listen, next.server.listen)) return undefined;
    try {
      await probeListen(host, port);
      return undefined;
    } catch (err) {
      const configured = running.server.listen;
      // With port 0 the configuration does not say where the workers listen; they said so when they started.
      const at = configured.port !== 0 ? `${configured.host}:${configured.port}` : (this.#slots.find((slot) => slot.listen !== null)?.listen ?? 'the running address');
      return `cannot listen on ${host}:${port}: ${(err as Error).message}; still listening on ${at} — free the address or choose another in server.listen`;
    }
  }

  /** Logs, once for the cluster, a configuration that was not applied: it changed nothing anywhere. */
  #notApplied(trigger: string, problems: readonly string[], refusals: readonly WorkerAnswer[]): void {
    const generation = this.#lb!.generation.id;
    const unanswered = refusals.some((answer) => !answer.answered);
    this.#logger.error(
      {
        trigger,
        generation,
        problems,
        ...(refusals.length > 0 ? { workers: refusals.map((a) => ({ worker: a.slot.id, problems: a.problems })) } : {}),
      },
      `configuration not applied, still serving generation ${generation}:\n${problems.join('\n')}${
        unanswered ? `\nsave lb.toml again or send SIGHUP to retry once every worker serves` : ''
      }`,
    );
  }

  /**
   * Waits, at most RELOAD_DEADLINE_MS, for workers given their configuration
   * that do not serve yet: one that fails to start then takes no part in the
   * reload (its failure is not the new configuration's), and one that
   * started prepares it like the others.
   */
  async #settleStarting(): Promise<void> {
    const starting = this.#slots.filter((slot) => slot.alive && slot.configured && slot.state === 'starting');
    if (starting.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled(starting.map((slot) => slot.ready())),
      new Promise((resolve) => (timer = setTimeout(resolve, RELOAD_DEADLINE_MS))),
    ]);
    clearTimeout(timer);
  }

  /** Sends a worker process that said hello the configuration in service, once no reload is being decided. */
  async #configure(slot: WorkerSlot): Promise<void> {
    const pid = slot.pid;
    while (this.#deciding !== undefined) await this.#deciding;
    // Gone while it waited (a restart forks a new process, which says hello itself).
    if (slot.pid !== pid || !slot.alive) return;
    slot.configure({
      type: 'config',
      file: this.#options.file,
      source: this.#current.source,
      generation: this.#current.generation,
      states: this.#states(),
    });
  }

  /** Starts or stops workers to match `server.workers` after a reload. */
  #resize(wanted: number): void {
    if (this.#shuttingDown) return;
    const active = this.#slots.filter((slot) => !this.#retiring.has(slot));
    if (wanted === active.length) return;
    if (wanted > active.length) {
      // Ids of stopping slots too: one still draining keeps its id until it has exited.
      const used = new Set(this.#slots.map((slot) => slot.id));
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
    this.#admin?.retire(exit.counters, exit.clients);
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
      exitProcess(exitCode);
      return;
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
      exitProcess(0);
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
