/**
 * One backend server as the whole process knows it: health, counters and
 * pooled connections. Keyed by URL in the BackendRegistry, so it outlives
 * configuration generations (a reload that keeps the URL keeps all of this).
 */
import { BackendClient } from '../client/backend-client.js';
import { createBackendConnector } from './backend-connector.js';
import type { HealthTarget } from '../plugin/types.js';

export type BackendState = 'up' | 'down' | 'unknown';

/** Connection settings that need a new BackendClient when they change. */
export interface ClientOptions {
  readonly connectTimeout: number;
  readonly maxConnections: number;
}

/**
 * Upper bounds, in ms, of the request duration histogram's buckets (a last
 * bucket above them is implied). Few on purpose: each costs a series per backend.
 */
export const DURATION_BUCKETS_MS: readonly number[] = [1, 5, 25, 100, 250, 1000, 2500, 10000];

export interface StateChange {
  readonly backend: Backend;
  readonly from: BackendState;
  readonly to: BackendState;
  readonly reason: string;
}

export class Backend {
  readonly url: string;
  readonly target: HealthTarget;
  /** Requests in flight to this backend now. */
  active = 0;
  /** Requests sent, over the process lifetime. */
  requests = 0;
  /** Requests that failed at the backend (connect error, reset, timeout, invalid response). */
  failures = 0;
  /** Responses by status class: [1xx, 2xx, 3xx, 4xx, 5xx]. */
  readonly responses = [0, 0, 0, 0, 0];
  /**
   * Finished exchanges (response complete or failed) by duration: one count
   * per DURATION_BUCKETS_MS bucket, then one for longer; not cumulative.
   */
  readonly durationCounts: number[] = new Array<number>(DURATION_BUCKETS_MS.length + 1).fill(0);
  /** Sum of the durations counted in durationCounts, ms. */
  durationSumMs = 0;
  state: BackendState = 'unknown';
  reason = 'not checked yet';
  changedAt = Date.now();
  /** Latency of the last active probe, ms (undefined before the first). */
  lastProbeMs: number | undefined;
  /** Consecutive connect failures, resets or invalid responses on real traffic. */
  passiveFailures = 0;
  /** The backend's connections (a reload that changes their settings replaces it). */
  client: BackendClient;
  clientOptions: ClientOptions;

  constructor(url: string, options: ClientOptions) {
    this.url = url;
    const parsed = new URL(url);
    this.target = {
      url,
      protocol: parsed.protocol as 'http:' | 'https:',
      hostname: parsed.hostname.replace(/^\[|\]$/g, ''),
      port: Number(parsed.port) || (parsed.protocol === 'https:' ? 443 : 80),
    };
    this.clientOptions = options;
    this.client = Backend.createClient(url, options);
  }

  /** Counts one finished exchange that took `ms` from dispatch to its end. */
  observeDuration(ms: number): void {
    let i = 0;
    while (i < DURATION_BUCKETS_MS.length && ms > DURATION_BUCKETS_MS[i]!) i++;
    this.durationCounts[i]!++;
    this.durationSumMs += ms;
  }

  /** In rotation: up, or not yet known to be down. */
  get healthy(): boolean {
    return this.state !== 'down';
  }

  static createClient(url: string, options: ClientOptions): BackendClient {
    return new BackendClient(url, {
      connections: options.maxConnections,
      connect: createBackendConnector(options.connectTimeout),
      // A backend closing an idle keep-alive socket races with our next
      // request on it; ending idle sockets before Node's default 5 s server
      // keep-alive narrows that window. Backends that announce
      // `Keep-Alive: timeout=N` are honoured (N − 1 s) below the cap.
      keepAliveTimeout: 4_000,
      keepAliveMaxTimeout: 60_000,
    });
  }
}
