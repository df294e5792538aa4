/**
 * One worker slot of a cluster primary: the process serving in it now (a
 * node:cluster Worker), what the primary knows about that process, and the
 * request/answer exchanges with it over IPC (start, reload, counters,
 * shutdown). The slot outlives its processes: a restart forks a new one
 * into the same slot, so its id (1…N) is stable in logs and /status.
 *
 * Whether and when to restart is the primary's decision; the slot only
 * reports the exit.
 */
import cluster, { type Worker } from 'node:cluster';
import {
  isMessage,
  WORKER_ENV,
  type BackendCounters,
  type PrimaryMessage,
  type ReloadMessage,
  type WorkerMessage,
} from './messages.js';

export type SlotState = 'starting' | 'serving' | 'stopping' | 'restarting';

/** How a reload went in one worker. */
export interface WorkerReload {
  readonly slot: WorkerSlot;
  readonly ok: boolean;
  readonly problems: readonly string[];
  /** The generation it serves after the attempt (null if it has not started). */
  readonly serving: number | null;
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
  /** Counters of the current process as of its last answer. */
  counters: readonly BackendCounters[] = [];
  /** Whether it answered the last request for counters in time. */
  answered = true;
  /** The problems it reported when it could not start (its exit follows). */
  startProblems: readonly string[] | undefined;
  /** Where its listener is bound (`host:port`) and how, once it serves. */
  listen: string | null = null;
  protocol: 'http' | 'https' = 'http';
  #stopRequested = false;
  #stopGraceMs = 0;
  #ready: { promise: Promise<void>; resolve(): void; reject(err: Error): void } | undefined;
  readonly #reloads = new Map<number, Pending<WorkerReload>>();
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
    this.answered = true;
    this.startProblems = undefined;
    this.#stopRequested = false;
    let resolveReady!: () => void;
    let rejectReady!: (err: Error) => void;
    const promise = new Promise<void>((resolve, reject) => ((resolveReady = resolve), (rejectReady = reject)));
    promise.catch(() => {});
    this.#ready = { promise, resolve: resolveReady, reject: rejectReady };
    const worker = cluster.fork({ [WORKER_ENV.id]: String(this.id), [WORKER_ENV.logLevel]: this.logLevel });
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
        new Error(
          this.startProblems
            ? `worker ${this.id} could not start:\n${this.startProblems.join('\n')}`
            : `worker ${this.id} exited (${signal ?? `code ${code}`}) before it served`,
        ),
      );
      this.#ready = undefined;
      for (const [generation, pending] of this.#reloads) {
        clearTimeout(pending.timer);
        pending.resolve({ slot: this, ok: false, problems: [`worker ${this.id} exited (${signal ?? `code ${code}`})`], serving: null });
        this.#reloads.delete(generation);
      }
      for (const [id, pending] of this.#stats) {
        clearTimeout(pending.timer);
        pending.resolve(false);
        this.#stats.delete(id);
      }
      const counters = this.counters;
      this.counters = [];
      this.generation = null;
      resolveExit();
      const ranMs = Date.now() - (this.startedAt?.getTime() ?? Date.now());
      this.events.exit(this, { pid: worker.process.pid, code, signal, expected, ranMs, counters });
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

  /** Sends `message` and waits for its outcome, at most `timeoutMs`. */
  reload(message: ReloadMessage, timeoutMs: number): Promise<WorkerReload> {
    if (this.#worker === undefined) {
      return Promise.resolve({ slot: this, ok: false, problems: [`worker ${this.id} is not running`], serving: null });
    }
    return new Promise<WorkerReload>((resolve) => {
      const timer = setTimeout(() => {
        this.#reloads.delete(message.generation);
        resolve({ slot: this, ok: false, problems: [`worker ${this.id} did not answer within ${timeoutMs}ms`], serving: this.generation });
      }, timeoutMs);
      this.#reloads.set(message.generation, { resolve, timer });
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
        return;
      case 'reloaded': {
        if (message.ok || this.generation === null) this.generation = message.serving;
        const pending = this.#reloads.get(message.generation);
        if (pending === undefined) return;
        this.#reloads.delete(message.generation);
        clearTimeout(pending.timer);
        pending.resolve({ slot: this, ok: message.ok, problems: message.problems, serving: message.serving });
        return;
      }
      case 'passive-down':
        this.events.passiveDown(this, message.url, message.pool, message.reason);
        return;
      case 'stats': {
        this.counters = message.backends;
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
