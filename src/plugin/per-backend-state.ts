/**
 * State a plugin keeps per backend URL and hands over from one configuration
 * generation to the next (circuits, a weighted cycle). Handed over as it is,
 * it would keep every URL ever configured for the life of the process:
 * without bound where backends come and go by address (autoscaled pods, each
 * with a new IP). So each instance using it says which backends its
 * configuration lists (`api.backendUrls`), and when one closes, the entries
 * of URLs that no instance still using it lists are dropped — on close, not
 * on create: when a reload fails to build, its instance is closed first, and
 * the running one still serves the URLs the new configuration dropped.
 *
 * @example
 * ```ts
 * create(config, api) {
 *   const state = api.inherited instanceof PerBackendState ? api.inherited : new PerBackendState<Counter>();
 *   const instance = { handle…, handOver: () => state, close: () => { state.release(instance); } };
 *   state.use(instance, api);
 *   return instance;
 * }
 * ```
 */
import type { PluginApi } from './types.js';

export class PerBackendState<V> {
  /** The entries, by backend URL (`Candidate.url`). */
  readonly byUrl = new Map<string, V>();
  /** The backend URLs of each instance using this state. */
  readonly #users = new Map<object, ReadonlySet<string>>();

  /** `instance`, created with `api`, uses this state until it closes. */
  use(instance: object, api: Pick<PluginApi, 'backendUrls'>): void {
    this.#users.set(instance, api.backendUrls);
  }

  /** `instance` closed: drops the entries of URLs no instance still using this state lists, and returns those URLs. */
  release(instance: object): string[] {
    this.#users.delete(instance);
    const dropped: string[] = [];
    for (const url of this.byUrl.keys()) {
      if (this.#listed(url)) continue;
      this.byUrl.delete(url);
      dropped.push(url);
    }
    return dropped;
  }

  #listed(url: string): boolean {
    for (const urls of this.#users.values()) if (urls.has(url)) return true;
    return false;
  }
}
