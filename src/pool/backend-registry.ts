/**
 * Every backend the process talks to, keyed by URL and reference-counted by
 * the configuration generations that use it. A reload that keeps a URL keeps
 * its Backend (health, counters, pooled connections); one that drops it lets
 * in-flight requests finish, then closes its connections.
 */
import { EventEmitter } from 'node:events';
import { Backend, type BackendState, type ClientOptions, type StateChange } from './backend.js';

interface Entry {
  backend: Backend;
  refs: number;
}

export interface BackendRegistryEvents {
  change: [StateChange];
  /** No generation uses the backend any more (a reload removed it); its pooled connections are closing. */
  released: [Backend];
}

export class BackendRegistry extends EventEmitter<BackendRegistryEvents> {
  readonly #entries = new Map<string, Entry>();
  /**
   * Bumped on every state change. Pools compare it with the version their
   * cached list of healthy members was built at: one integer compare per
   * request instead of a listener per pool.
   */
  healthVersion = 0;

  get(url: string): Backend | undefined {
    return this.#entries.get(url)?.backend;
  }

  all(): Backend[] {
    return [...this.#entries.values()].map((e) => e.backend);
  }

  /** Take a reference to the backend at `url`, creating it (or a new client, when its options changed). */
  acquire(url: string, options: ClientOptions): Backend {
    let entry = this.#entries.get(url);
    if (!entry) {
      entry = { backend: new Backend(url, options), refs: 0 };
      this.#entries.set(url, entry);
    } else if (
      entry.backend.clientOptions.connectTimeout !== options.connectTimeout ||
      entry.backend.clientOptions.maxConnections !== options.maxConnections
    ) {
      // Requests already sent finish on the old client; close() waits for them.
      const old = entry.backend.client;
      entry.backend.client = Backend.createClient(url, options);
      entry.backend.clientOptions = options;
      void old.close().catch(() => {});
    }
    entry.refs++;
    return entry.backend;
  }

  /** Drop a reference; the last one closes the backend's connections once its requests finish. */
  release(backend: Backend): void {
    const entry = this.#entries.get(backend.url);
    if (!entry || entry.backend !== backend) return;
    if (--entry.refs > 0) return;
    this.#entries.delete(backend.url);
    void backend.client.close().catch(() => {});
    this.emit('released', backend);
  }

  setState(backend: Backend, to: BackendState, reason: string): void {
    const from = backend.state;
    if (from === to && backend.reason === reason) return;
    backend.state = to;
    backend.reason = reason;
    if (from === to) return;
    backend.changedAt = Date.now();
    if ((from === 'down') !== (to === 'down')) this.healthVersion++;
    this.emit('change', { backend, from, to, reason });
  }

  async closeAll(): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const { backend } of this.#entries.values()) closing.push(backend.client.close().catch(() => {}));
    this.#entries.clear();
    await Promise.all(closing);
  }

  /** Cut every connection now (shutdown past its grace period). */
  async destroyAll(): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const { backend } of this.#entries.values()) closing.push(backend.client.destroy().catch(() => {}));
    this.#entries.clear();
    await Promise.all(closing);
  }
}
