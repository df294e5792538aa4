/**
 * A cluster worker: serves traffic on the listener all workers share, from
 * the configuration text its primary validated, with the backend health its
 * primary decides. It never reads lb.toml and runs no health checks and no
 * admin listener; what it sees on its own traffic (passive detection) takes
 * a backend out here at once and is reported to the primary, which makes it
 * cluster-wide. Every log line carries `worker: <slot id>`.
 */
import { pino } from 'pino';
import os from 'node:os';
import { loadConfigText } from '../config/load.js';
import type { Backend } from '../pool/backend.js';
import type { PoolConfig } from '../config/types.js';
import { locatePluginFailure, problemsOf } from '../server/reload-history.js';
import { Switchyard, type RootLogger } from '../server/switchyard.js';
import type { Generation } from '../server/generation.js';
import {
  isMessage,
  WORKER_ENV,
  type BackendCounters,
  type BackendStateUpdate,
  type ConfigMessage,
  type PrimaryMessage,
  type ReloadMessage,
  type WorkerMessage,
} from './messages.js';

function send(message: WorkerMessage): void {
  if (!process.connected) return;
  // The primary is gone or going: node:cluster ends this process when the channel closes.
  process.send!(message, undefined, undefined, () => {});
}

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

export class ClusterWorker {
  #lb: Switchyard | undefined;
  /** Every backend state the primary told, by URL: applied to each generation before it serves. */
  #told = new Map<string, BackendStateUpdate>();
  /** Start and reloads run one at a time, in the order they came. */
  #queue: Promise<void> = Promise.resolve();
  #stopping: Promise<void> | undefined;

  constructor(
    readonly id: number,
    private readonly logger: RootLogger,
  ) {}

  readonly onMessage = (message: unknown): void => {
    if (!isMessage<PrimaryMessage>(message)) return;
    switch (message.type) {
      case 'config':
        this.#told = new Map(message.states.map((s) => [s.url, s]));
        this.#enqueue(() => this.#start(message));
        return;
      case 'reload':
        this.#told = new Map(message.states.map((s) => [s.url, s]));
        this.#enqueue(() => this.#reload(message));
        return;
      case 'backend-state': {
        const update: BackendStateUpdate = { url: message.url, state: message.state, reason: message.reason, changedAt: message.changedAt };
        this.#told.set(update.url, update);
        this.#lb?.applyBackendState(update);
        return;
      }
      case 'stats-request':
        send({
          type: 'stats',
          id: message.id,
          generation: this.#lb?.generation.id ?? 0,
          backends: this.#lb?.registry.all().map(countersOf) ?? [],
        });
        return;
      case 'shutdown':
        void this.stop(message.graceMs, 'the primary asked');
        return;
    }
  };

  #enqueue(work: () => Promise<void>): void {
    this.#queue = this.#queue.then(work).catch((err: unknown) => {
      this.logger.error({ err }, `worker ${this.id}: ${(err as Error).message}`);
    });
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
      });
    } catch (err) {
      const problems = problemsOf(locatePluginFailure(err, message.file, message.source));
      this.logger.error({ problems }, `worker ${this.id} could not start:\n${problems.join('\n')}`);
      send({ type: 'start-failed', problems });
      // Let the message reach the primary before the exit does.
      setTimeout(() => process.exit(1), 50);
      return;
    }
    this.#lb = lb;
    if (this.#stopping) return;
    const { address, protocol } = lb.listener;
    send({ type: 'ready', generation: lb.generation.id, listen: `${address.address}:${address.port}`, protocol });
  }

  async #reload(message: ReloadMessage): Promise<void> {
    const lb = this.#lb;
    if (lb === undefined || this.#stopping) {
      send({ type: 'reloaded', generation: message.generation, ok: false, problems: ['the worker is not serving'], serving: lb?.generation.id ?? 0 });
      return;
    }
    // Forked while the primary was applying it: the start already had it.
    if (lb.generation.id >= message.generation) {
      send({ type: 'reloaded', generation: message.generation, ok: true, problems: [], serving: lb.generation.id });
      return;
    }
    try {
      await lb.reloadText(message.source, message.file, message.trigger, message.generation);
      send({ type: 'reloaded', generation: message.generation, ok: true, problems: [], serving: lb.generation.id });
    } catch (err) {
      const problems = problemsOf(err);
      // The primary logs it once for the cluster, with these problems.
      this.logger.debug({ problems, generation: message.generation }, `worker ${this.id} could not apply generation ${message.generation}`);
      send({ type: 'reloaded', generation: message.generation, ok: false, problems, serving: lb.generation.id });
    }
  }

  /** Stops accepting, lets in-flight requests finish within `graceMs`, exits 0. */
  stop(graceMs: number | undefined, why: string): Promise<void> {
    this.#stopping ??= (async () => {
      this.logger.debug({ why }, `worker ${this.id}: shutting down gracefully (${why})`);
      // A start under way finishes first, so there is something to close.
      await this.#queue;
      await this.#lb?.close(graceMs);
      process.exit(0);
    })();
    return this.#stopping;
  }
}

/** The worker process's main: wire IPC and signals, then ask the primary for the configuration. */
export function runWorker(): void {
  const id = Number(process.env[WORKER_ENV.id]);
  const level = process.env[WORKER_ENV.logLevel] ?? 'info';
  const logger = (pino({ name: 'switchyard', level }) as unknown as RootLogger).child({ worker: id });
  const worker = new ClusterWorker(id, logger);
  process.on('message', worker.onMessage);
  // A signal sent to the whole process group (Ctrl-C, systemd) reaches the
  // workers too: shut down gracefully like the primary asks; a second one
  // exits at once. SIGHUP is the primary's to handle (it reloads).
  let signalled = false;
  const onSignal = (signal: 'SIGTERM' | 'SIGINT'): void => {
    if (signalled) process.exit(128 + os.constants.signals[signal]);
    signalled = true;
    void worker.stop(undefined, signal);
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGHUP', () => logger.debug('SIGHUP: the primary reloads; nothing to do here'));
  send({ type: 'hello' });
}
