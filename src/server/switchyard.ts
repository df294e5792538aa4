/**
 * One running Switchyard: the backend registry (which outlives
 * generations), the current generation, the traffic listener, and the
 * operations on them: start, reload, shut down.
 */
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { loadConfigFile } from '../config/load.js';
import type { LbConfig } from '../config/types.js';
import type { Logger } from '../plugin/types.js';
import { BackendRegistry } from '../pool/backend-registry.js';
import { PassiveDetector } from '../pool/passive-detector.js';
import { createForwarder } from '../proxy/forward.js';
import { Generation, type GenerationDeps } from './generation.js';
import { TrafficServer } from './traffic-server.js';

export type RootLogger = Logger & { child(bindings: object): RootLogger };

export interface StartOptions {
  readonly logger?: RootLogger;
}

export class Switchyard {
  readonly registry = new BackendRegistry();
  readonly logger: RootLogger;
  readonly #passive: PassiveDetector;
  readonly #deps: GenerationDeps;
  #generation: Generation | undefined;
  #nextId = 1;
  #traffic: TrafficServer | undefined;
  #address: AddressInfo | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: StartOptions = {}) {
    this.logger = options.logger ?? (pino({ name: 'switchyard' }) as unknown as RootLogger);
    this.#passive = new PassiveDetector(this.registry);
    this.#deps = { registry: this.registry, logger: this.logger, forward: createForwarder(this.#passive.onFailure) };
    this.registry.on('change', ({ backend, from, to, reason }) => {
      this.logger.info({ backend: backend.url, from, to, reason }, `backend ${backend.url} ${from} → ${to}: ${reason}`);
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
    this.#traffic = new TrafficServer(this.#generation, this.logger);
    this.#address = await this.#traffic.listen();
    this.logger.info(
      { listen: `${this.#address.address}:${this.#address.port}`, generation: this.#generation.id, config: config.file },
      `Switchyard listening on ${this.#traffic.protocol}://${this.#address.address}:${this.#address.port}`,
    );
  }

  /**
   * Builds a new generation from `config` and swaps it in. Throws (leaving
   * the running generation serving) when anything in the build fails.
   */
  async reload(config: LbConfig): Promise<Generation> {
    const previous = this.generation;
    const started = performance.now();
    const next = await Generation.build(this.#nextId++, config, this.#deps, previous);
    this.#generation = next;
    this.#traffic!.generation = next;
    this.logger.info(
      { generation: next.id, ms: Math.round(performance.now() - started) },
      `configuration generation ${next.id} is live`,
    );
    void previous.retire();
    return next;
  }

  /** Reads, validates and applies a config file. */
  async reloadFile(file: string): Promise<Generation> {
    return this.reload(await loadConfigFile(file));
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
    this.#passive.close();
    await this.#generation?.close();
    await this.registry.closeAll();
  }
}
