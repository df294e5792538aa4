/**
 * One worker slot of a cluster primary: the process serving in it now (a
 * node:cluster Worker), what the primary knows about that process, and the
 * request/answer exchanges with it over IPC (start, the two phases of a
 * reload, counters, shutdown). The slot outlives its processes: a restart
 * forks a new one into the same slot, so its id (1…N) is stable in logs
 * and /status.
 *
 * Whether and when to restart is the primary's decision; the slot only
 * reports the exit.
 */
import cluster, { type Worker } from 'node:cluster';
import { ConfigError, type ConfigIssue } from '../config/issues.js';
import { NO_CLIENT_CONNECTIONS, type ClientConnectionFigures } from '../server/client-connection-counts.js';
import {
  isMessage,
  WORKER_ENV,
  type BackendCounters,
  type ConfigMessage,
  type PrepareMessage,
  type PrimaryMessage,
  type WorkerMessage,
} from './messages.js';

export type SlotState = 'starting' | 'serving' | 'stopping' | 'restarting';

/** A worker's answer to one phase of a reload (prepare, commit). */
export interface WorkerAnswer {
  readonly slot: WorkerSlot;
  readonly ok: boolean;
  /** When not ok: why, one problem per line. */
  readonly problems: readonly string[];
  /** False when the process gave no answer: it exited, was not running, or took too long. */
  readonly answered: boolean;
}

/** What the primary does when a slot's process says something or exits. */
export interface SlotEvents {
  /** The process listens for messages: send it its configuration. */
  hello(slot: WorkerSlot): void;
  passiveDown(slot: WorkerSlot, url: string, pool: string, reason: string): void;
  /** The process exited. */
  exit(slot: WorkerSlot, exit: WorkerExit): void;
}

export interface WorkerExit {
  readonly pid: number | undefined;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** It was told to stop (shutdown, fewer workers). */
  readonly expected: boolean;
  /** How long the process ran, ms. */
  readonly ranMs: number;
  /** Its last reported counters. */
  readonly counters: readonly BackendCounters[];
  /** Its last reported client connection figures. */
  readonly clients: ClientConnectionFigures;
}

interface Pending<T> {
  resolve(value: T): void;
  timer: NodeJS.Timeout;
}

export class WorkerSlot {
  #worker: Worker | undefined;
  state: SlotState = 'starting';
  /** The generation its process serves; null until it has started. */
  generation: number | null = null;
  /** When its current process was forked. */
  startedAt: Date | null = null;
  /** Restarts after unexpected exits, over the slot's life. */
  restarts = 0;
  /** Unexpected exits in a row that each came soon after the process started (drives the restart backoff). */
  quickCrashes = 0;
  /** Counters of the current process as of its last answer or push (at most COUNTERS_PUSH_MS old while it counts). */
  counters: readonly BackendCounters[] = [];
  /** Client connections of the current process, as of the same answer or push. */
  clients: ClientConnectionFigures = NO_CLIENT_CONNECTIONS;
  /** Whether it answered the last request for counters in time. */
  answered = true;
  /** The problems it reported when it could not start (its exit follows). */
  startProblems: readonly string[] | undefined;
  /** The same, as configuration issues, when they are. */
  startIssues: readonly ConfigIssue[] | undefined;
  /** Whether its current process has been sent its configuration. */
  configured = false;
  /** Where its listener is bound (`host:port`) and how, once it serves. */
  listen: string | null = null;
  protocol: 'http' | 'https' = 'http';
  #stopRequested = false;
  #stopGraceMs = 0;
  #ready: { promise: Promise<void>; resolve(): void; reject(err: Error): void } | undefined;
  /** Answers awaited, by phase and reload number (`prepare:3`, `commit:3`). */
  /** Questions to the process awaiting an answer, by `prepare:N` / `commit:N`: each resolves once (it clears its own timer). */
  readonly #answers = new Map<string, (answer: WorkerAnswer) => void>();
  readonly #stats = new Map<number, Pending<boolean>>();
  #nextStatsId = 1;
  #exited: Promise<void> = Promise.resolve();

  constructor(
    readonly id: number,
    private readonly events: SlotEvents,
    private readonly logLevel: string,
  ) {}

  get pid(): number | null {
    return this.#worker?.process.pid ?? null;
  }

  /** True while a process runs in the slot (starting, serving or stopping). */
  get alive(): boolean {
    return this.#worker !== undefined;
  }

  /** Forks a process into the slot. `ready()` settles when it serves or fails to start. */
  fork(): void {
    this.state = 'starting';
    this.generation = null;
    this.startedAt = new Date();
    this.counters = [];
    this.clients = NO_CLIENT_CONNECTIONS;
    this.answered = true;
    this.startProblems = undefined;
    this.startIssues = undefined;
    this.configured = false;
    this.#stopRequested = false;
    let resolveReady!: () => void;
    let rejectReady!: (err: Error) => void;
    const promise = new Promise<void>((resolve, reject) => ((resolveReady = resolve), (rejectReady = reject)));
    promise.catch(() => {});
    this.#ready = { promise, resolve: resolveReady, reject: rejectReady };
    const worker = cluster.fork({
      [WORKER_ENV.id]: String(this.id),
      [WORKER_ENV.logLevel]: this.logLevel,
      [WORKER_ENV.connectionsHandedOver]: cluster.schedulingPolicy === cluster.SCHED_RR ? '1' : '0',
    });
    this.#worker = worker;
    let resolveExit!: () => void;
    this.#exited = new Promise<void>((resolve) => (resolveExit = resolve));
    worker.on('message', (message: unknown) => {
      if (isMessage<WorkerMessage>(message)) this.#onMessage(worker, message);
    });
    // Sending to a process that is going away fails; its exit is handled below.
    worker.on('error', () => {});
    worker.once('exit', (code: number | null, signal: NodeJS.Signals | null) => {
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      const expected = this.#stopRequested;
      this.#ready?.reject(
        this.startIssues
          ? new ConfigError(this.startIssues)
          : new Error(
              this.startProblems
                ? `worker ${this.id} could not start:\n${this.startProblems.join('\n')}`
                : `worker ${this.id} exited (${signal ?? `code ${code}`}) before it served`,
            ),
      );
      this.#ready = undefined;
      for (const answer of [...this.#answers.values()]) {
        answer({ slot: this, ok: false, answered: false, problems: [`its process exited (${signal ?? `code ${code}`}) before it answered`] });
      }
      for (const [id, pending] of this.#stats) {
        clearTimeout(pending.timer);
        pending.resolve(false);
        this.#stats.delete(id);
      }
      const counters = this.counters;
      const clients = this.clients;
      this.counters = [];
      this.clients = NO_CLIENT_CONNECTIONS;
      this.generation = null;
      resolveExit();
      const ranMs = Date.now() - (this.startedAt?.getTime() ?? Date.now());
      this.events.exit(this, { pid: worker.process.pid, code, signal, expected, ranMs, counters, clients });
    });
  }

  /** Resolves once the process serves; rejects when it exits first (with its start problems, when it sent them). */
  ready(): Promise<void> {
    return this.#ready?.promise ?? Promise.reject(new Error(`worker ${this.id} is not starting`));
  }

  send(message: PrimaryMessage): void {
    const worker = this.#worker;
    if (worker === undefined || !worker.isConnected()) return;
    worker.send(message, (err: Error | null) => {
      // The process is exiting; the exit handler deals with what it leaves.
      void err;
    });
  }

  /** Sends the process the configuration to start from. */
  configure(message: ConfigMessage): void {
    this.configured = true;
    this.send(message);
  }

  /** Asks the process to prepare a reload; resolves with its answer, or not ok after `timeoutMs` or when it exits. */
  prepare(message: PrepareMessage, timeoutMs: number): Promise<WorkerAnswer> {
    return this.#ask(`prepare:${message.reload}`, message, timeoutMs);
  }

  /** Tells the process to serve the reload it prepared; resolves when it does, or not ok after `timeoutMs` or when it exits. */
  commit(reload: number, generation: number, timeoutMs: number): Promise<WorkerAnswer> {
    return this.#ask(`commit:${reload}`, { type: 'commit', reload, generation }, timeoutMs);
  }

  /** Tells the process to undo the reload it prepared (or is still preparing: it undoes it when done). */
  abort(reload: number, generation: number): void {
    this.send({ type: 'abort', reload, generation });
  }

  #ask(key: string, message: PrimaryMessage, timeoutMs: number): Promise<WorkerAnswer> {
    if (this.#worker === undefined) {
      return Promise.resolve({ slot: this, ok: false, answered: false, problems: ['no process is running in it'] });
    }
    return new Promise<WorkerAnswer>((resolve) => {
      const timer = setTimeout(() => {
        this.#answers.delete(key);
        resolve({ slot: this, ok: false, answered: false, problems: [`it did not answer within ${timeoutMs}ms`] });
      }, timeoutMs);
      this.#answers.set(key, (answer) => {
        clearTimeout(timer);
        this.#answers.delete(key);
        resolve(answer);
      });
      this.send(message);
    });
  }

  /** Asks for counters; true when they came within `timeoutMs` (else the last ones stay, marked unanswered). */
  refreshCounters(timeoutMs: number): Promise<boolean> {
    if (this.#worker === undefined || this.state === 'starting') return Promise.resolve(true);
    const id = this.#nextStatsId++;
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.#stats.delete(id);
        this.answered = false;
        resolve(false);
      }, timeoutMs);
      this.#stats.set(id, { resolve, timer });
      this.send({ type: 'stats-request', id });
    });
  }

  /**
   * Tells the process to finish its in-flight requests within `graceMs` and
   * exit; past `graceMs + marginMs` it is killed. Resolves when it has exited.
   */
  async stop(graceMs: number, marginMs: number): Promise<void> {
    const worker = this.#worker;
    if (worker === undefined) return;
    this.#stopRequested = true;
    this.#stopGraceMs = graceMs;
    this.state = 'stopping';
    this.send({ type: 'shutdown', graceMs });
    const exited = this.#exited;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(resolve, graceMs + marginMs, 'late')));
    if ((await Promise.race([exited, late])) === 'late') {
      worker.process.kill('SIGKILL');
      await exited;
    }
    clearTimeout(timer);
  }

  /** Kills the process at once (a second signal to the primary). */
  kill(): void {
    this.#stopRequested = true;
    this.#worker?.process.kill('SIGKILL');
  }

  /** Resolves when the current process (if any) has exited. */
  exited(): Promise<void> {
    return this.#exited;
  }

  #onMessage(worker: Worker, message: WorkerMessage): void {
    if (this.#worker !== worker) return;
    switch (message.type) {
      case 'hello':
        // Told to stop before it listened: the shutdown may have been lost.
        if (this.#stopRequested) this.send({ type: 'shutdown', graceMs: this.#stopGraceMs });
        else this.events.hello(this);
        return;
      case 'ready':
        this.state = this.#stopRequested ? 'stopping' : 'serving';
        this.generation = message.generation;
        this.listen = message.listen;
        this.protocol = message.protocol;
        this.#ready?.resolve();
        this.#ready = undefined;
        return;
      case 'start-failed':
        this.startProblems = message.problems;
        this.startIssues = message.issues;
        return;
      case 'prepared':
        this.#answers.get(`prepare:${message.reload}`)?.({ slot: this, ok: message.ok, answered: true, problems: message.problems });
        return;
      case 'committed':
        this.generation = message.generation;
        this.#answers.get(`commit:${message.reload}`)?.({ slot: this, ok: true, answered: true, problems: [] });
        return;
      case 'passive-down':
        this.events.passiveDown(this, message.url, message.pool, message.reason);
        return;
      case 'stats': {
        this.counters = message.backends;
        this.clients = message.clients;
        this.generation = message.generation;
        const pending = this.#stats.get(message.id);
        if (pending === undefined) return;
        this.#stats.delete(message.id);
        clearTimeout(pending.timer);
        this.answered = true;
        pending.resolve(true);
        return;
      }
    }
  }
}
