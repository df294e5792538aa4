/**
 * A cluster worker: serves traffic on the listener all workers share, from
 * the configuration text its primary validated, with the backend health its
 * primary decides. It never reads lb.toml and runs no health checks and no
 * admin listener; what it sees on its own traffic (passive detection) takes
 * a backend out here at once and is reported to the primary, which makes it
 * cluster-wide. Every log line carries `worker: <slot id>`.
 */
import os from 'node:os';
import { ConfigError } from '../config/issues.js';
import { loadConfigText } from '../config/load.js';
import type { Backend } from '../pool/backend.js';
import type { PoolConfig } from '../config/types.js';
import { exitProcess, createProcessLogger } from '../server/process-log.js';
import { locatePluginFailure, problemsOf } from '../server/reload-history.js';
import { Switchyard, type PreparedReload, type RootLogger } from '../server/switchyard.js';
import { PLUGIN_DEADLINES, type Generation } from '../server/generation.js';
import { NO_CLIENT_CONNECTIONS } from '../server/client-connection-counts.js';
import {
  COUNTERS_PUSH_MS,
  isMessage,
  WORKER_ENV,
  type BackendCounters,
  type BackendStateUpdate,
  type ConfigMessage,
  type PrepareMessage,
  type PrimaryMessage,
  type WorkerMessage,
} from './messages.js';

function send(message: WorkerMessage, sent: () => void = () => {}): void {
  if (!process.connected) {
    sent();
    return;
  }
  // The primary is gone or going: node:cluster ends this process when the channel closes.
  process.send!(message, undefined, undefined, () => sent());
}

/** What the primary decides about a prepared reload: true to commit it. */
interface Decision {
  readonly promise: Promise<boolean>;
  resolve(commit: boolean): void;
}

function newDecision(): Decision {
  let resolve!: (commit: boolean) => void;
  const promise = new Promise<boolean>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * How long a prepared reload waits for the primary's decision: well past
 * the primary's own deadlines (the slowest worker's prepare, then its own
 * commit), so only a primary that broke in between leaves it undecided.
 */
const DECISION_DEADLINE_MS = PLUGIN_DEADLINES.createMs + 30_000;

function countersOf(backend: Backend): BackendCounters {
  return {
    url: backend.url,
    active: backend.active,
    requests: backend.requests,
    failures: backend.failures,
    responses: [...backend.responses],
    durationCounts: [...backend.durationCounts],
    durationSumMs: backend.durationSumMs,
  };
}

/**
 * A number that changes whenever a counter does: requests count when they
 * start, responses and failures when they end, so all three are in it, and
 * refused client connections, which may come with no request at all. (Not
 * the open connections: a gauge, read fresh by every /status, and one that
 * goes down could cancel a counter going up.)
 */
function countedTotal(backends: readonly Backend[], refused: number): number {
  let total = refused;
  for (const backend of backends) {
    total += backend.requests + backend.failures;
    for (const n of backend.responses) total += n;
  }
  return total;
}

export class ClusterWorker {
  #lb: Switchyard | undefined;
  /**
   * Once stopping, the backends this worker counted for: close() empties the
   * registry, and a /status asking for counters until the process is gone
   * (it may wait for its log to drain) must still get them, or the primary
   * would retire empty counters at the exit.
   */
  #stoppingBackends: Backend[] | undefined;
  /** Every backend state the primary told, by URL: applied to each generation before it serves. */
  #told = new Map<string, BackendStateUpdate>();
  /** Start and reloads run one at a time, in the order they came. */
  #queue: Promise<void> = Promise.resolve();
  /** The start from the primary's configuration, once it is queued. */
  #started: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  /** The primary's decisions about reloads it asked to prepare, by reload number, until each has been received and acted on. */
  readonly #decisions = new Map<number, Decision>();
  #pushTimer: NodeJS.Timeout | undefined;
  /** The sum of the counters last sent: an unchanged sum is not sent again. */
  #countedAtLastPush = -1;

  constructor(
    readonly id: number,
    private readonly logger: RootLogger,
    /** The primary accepts the connections and hands them over (SCHED_RR). */
    private readonly connectionsHandedOver = false,
  ) {}

  readonly onMessage = (message: unknown): void => {
    if (!isMessage<PrimaryMessage>(message)) return;
    switch (message.type) {
      case 'config':
        this.#told = new Map(message.states.map((s) => [s.url, s]));
        this.#started = this.#enqueue(() => this.#start(message));
        return;
      case 'prepare': {
        this.#told = new Map(message.states.map((s) => [s.url, s]));
        // Registered now, not when its turn in the queue comes: the decision may arrive first (the primary gave up waiting).
        const decision = newDecision();
        this.#decisions.set(message.reload, decision);
        this.#enqueue(() => this.#prepare(message, decision));
        return;
      }
      case 'commit':
      case 'abort':
        this.#decisions.get(message.reload)?.resolve(message.type === 'commit');
        return;
      case 'backend-state': {
        const update: BackendStateUpdate = { url: message.url, state: message.state, reason: message.reason, changedAt: message.changedAt };
        this.#told.set(update.url, update);
        this.#lb?.applyBackendState(update);
        return;
      }
      case 'stats-request':
        this.#sendCounters(message.id);
        return;
      case 'shutdown':
        void this.stop(message.graceMs, 'the primary asked');
        return;
    }
  };

  /** Runs `work` after what is queued; the promise settles when it is done (never rejects: a failure is logged). */
  #enqueue(work: () => Promise<void>): Promise<void> {
    this.#queue = this.#queue.then(work).catch((err: unknown) => {
      this.logger.error({ err }, `worker ${this.id}: ${(err as Error).message}`);
    });
    return this.#queue;
  }

  /** Before a generation serves, it gets the health the primary decided (its backends may be new here). */
  readonly #applyTold = (_generation: Generation, lb: Switchyard): void => {
    for (const update of this.#told.values()) lb.applyBackendState(update);
  };

  readonly #reportPassiveDown = (backend: Backend, pool: PoolConfig, reason: string): void => {
    send({ type: 'passive-down', url: backend.url, pool: pool.name, reason });
  };

  async #start(message: ConfigMessage): Promise<void> {
    if (this.#stopping) return;
    let lb: Switchyard;
    try {
      const config = await loadConfigText(message.source, message.file);
      lb = await Switchyard.start(config, {
        logger: this.logger,
        role: 'traffic',
        generation: message.generation,
        onGeneration: this.#applyTold,
        onPassiveDown: this.#reportPassiveDown,
        connectionsHandedOver: this.connectionsHandedOver,
      });
    } catch (err) {
      const located = locatePluginFailure(err, message.file, message.source);
      const problems = problemsOf(located);
      // The primary reports it once for the cluster (lb run's error at start, its restart line later).
      this.logger.debug({ problems }, `worker ${this.id} could not start:\n${problems.join('\n')}`);
      send({ type: 'start-failed', problems, ...(located instanceof ConfigError ? { issues: located.issues } : {}) });
      // Let the message reach the primary before the exit does.
      setTimeout(() => exitProcess(1), 50);
      return;
    }
    this.#lb = lb;
    if (this.#stopping) return;
    const { address, protocol } = lb.listener;
    send({ type: 'ready', generation: lb.generation.id, listen: `${address.address}:${address.port}`, protocol });
    // Off the request path: one small message a second at most, and none while nothing is counted.
    this.#pushTimer = setInterval(() => this.#pushCounters(), COUNTERS_PUSH_MS).unref();
  }

  /** Sends the counters when they changed since the last time. */
  #pushCounters(): void {
    const lb = this.#lb;
    if (lb === undefined) return;
    const backends = lb.registry.all();
    if (countedTotal(backends, lb.clientConnections.refused) === this.#countedAtLastPush) return;
    this.#sendCounters(0, backends);
  }

  /** Sends the counters of `from` (default: every backend now): the answer to request `id`, or pushed (0). */
  #sendCounters(id: number, from = this.#stoppingBackends ?? this.#lb?.registry.all() ?? [], sent?: () => void): void {
    const clients = this.#lb?.clientConnections ?? NO_CLIENT_CONNECTIONS;
    this.#countedAtLastPush = countedTotal(from, clients.refused);
    const backends = from.map(countersOf);
    send({ type: 'stats', id, generation: this.#lb?.generation.id ?? 0, backends, clients: { open: clients.open, refused: clients.refused } }, sent);
  }

  /**
   * Prepares the reload, answers, and holds it (no other reload starts here
   * meanwhile) until the primary's decision: commit when every process
   * prepared it, abort when any could not.
   */
  async #prepare(message: PrepareMessage, decision: Decision): Promise<void> {
    const { reload, generation } = message;
    const done = (): void => {
      if (this.#decisions.get(reload) === decision) this.#decisions.delete(reload);
    };
    const lb = this.#lb;
    if (lb === undefined || this.#stopping) {
      done();
      send({ type: 'prepared', reload, generation, ok: false, problems: [`worker ${this.id} is shutting down`] });
      return;
    }
    let prepared: PreparedReload;
    try {
      prepared = await lb.prepareText(message.source, message.file, message.trigger, generation);
    } catch (err) {
      done();
      const problems = problemsOf(err);
      // The primary logs it once for the cluster, with these problems.
      this.logger.debug({ problems, generation }, `worker ${this.id} could not prepare generation ${generation}`);
      send({ type: 'prepared', reload, generation, ok: false, problems });
      return;
    }
    send({ type: 'prepared', reload, generation, ok: true, problems: [] });
    // The primary always decides (commit or abort); the deadline is for a primary that broke meanwhile, so this worker's reloads do not stop for good.
    let deadline: NodeJS.Timeout | undefined;
    const commit = await Promise.race([
      decision.promise,
      new Promise<boolean>((resolve) => (deadline = setTimeout(resolve, DECISION_DEADLINE_MS, false).unref())),
    ]);
    clearTimeout(deadline);
    done();
    try {
      if (!commit) {
        await prepared.abort(['another process of the cluster could not apply it']);
        return;
      }
      await prepared.commit();
      send({ type: 'committed', reload, generation: lb.generation.id });
    } catch (err) {
      // Only when shutting down: the primary restarts nothing then.
      this.logger.debug({ err, generation }, `worker ${this.id}: generation ${generation} not committed: ${(err as Error).message}`);
    }
  }

  /** Stops accepting, lets in-flight requests finish within `graceMs`, exits 0. */
  stop(graceMs: number | undefined, why: string): Promise<void> {
    this.#stopping ??= (async () => {
      this.logger.debug({ why }, `worker ${this.id}: shutting down gracefully (${why})`);
      // A reload prepared here is not going to be served any more.
      for (const decision of this.#decisions.values()) decision.resolve(false);
      // A start under way finishes first, so there is something to close. A
      // reload being prepared is not waited for: closing undoes it.
      await this.#started;
      // Closing empties the registry; the Backend objects keep counting until the last request is done.
      const backends = (this.#stoppingBackends = this.#lb?.registry.all() ?? []);
      await this.#lb?.close(graceMs);
      clearInterval(this.#pushTimer);
      // What the requests that finished while draining counted, before the process (and the counters) go.
      this.#sendCounters(0, backends, () => exitProcess(0));
    })();
    return this.#stopping;
  }
}

/** The worker process's main: wire IPC and signals, then ask the primary for the configuration. */
export function runWorker(): void {
  const id = Number(process.env[WORKER_ENV.id]);
  const level = process.env[WORKER_ENV.logLevel] ?? 'info';
  // 0, unbounded: the primary bounds (and counts) what it copies on (process-log.ts).
  const logger = createProcessLogger(level, 0).child({ worker: id });
  const worker = new ClusterWorker(id, logger, process.env[WORKER_ENV.connectionsHandedOver] === '1');
  process.on('message', worker.onMessage);
  // A signal sent to the whole process group (Ctrl-C, systemd) reaches the
  // workers too: shut down gracefully like the primary asks; a second one
  // exits at once. SIGHUP is the primary's to handle (it reloads).
  let signalled = false;
  const onSignal = (signal: 'SIGTERM' | 'SIGINT'): void => {
    if (signalled) {
      exitProcess(128 + os.constants.signals[signal]);
      return;
    }
    signalled = true;
    void worker.stop(undefined, signal);
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGHUP', () => logger.debug('SIGHUP: the primary reloads; nothing to do here'));
  send({ type: 'hello' });
}
