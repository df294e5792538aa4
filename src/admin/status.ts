/**
 * GET /status: a JSON snapshot of the generation serving now and every
 * backend's state and counters. Built on request from what the core already
 * keeps; nothing here runs per proxied request.
 */
import type { BackendState } from '../pool/backend.js';
import type { AdminSource, WorkerStatus } from './admin-source.js';

export interface BackendStatus {
  readonly url: string;
  readonly weight: number;
  readonly state: BackendState;
  /** Why it is in that state (`status 503`, `ECONNREFUSED`, `timeout after 1s`, …). */
  readonly reason: string;
  /** When the state last changed (ISO 8601). */
  readonly changed_at: string;
  /** Latency of the last active health check, ms; null before the first or without checks. */
  readonly last_probe_ms: number | null;
  /** Requests in flight to this backend now, over every pool that uses it. */
  readonly active: number;
  /** Requests sent to this backend since the process started. */
  readonly requests: number;
  /** Requests that failed at the backend: connect error, reset, timeout, invalid response. */
  readonly failures: number;
  /** Responses received, by status class. */
  readonly responses: Readonly<Record<'1xx' | '2xx' | '3xx' | '4xx' | '5xx', number>>;
  /**
   * Active health check results while checks run, else null. `inconclusive`:
   * checks that could not run for lack of local resources (EMFILE…), which
   * left the state and the counts toward it as they were.
   */
  readonly health_checks: { readonly passed: number; readonly failed: number; readonly inconclusive: number } | null;
}

export interface PoolStatus {
  readonly strategy: string;
  readonly health: {
    readonly checker: string;
    readonly interval_ms: number;
    readonly timeout_ms: number;
    readonly unhealthy_after: number;
    readonly healthy_after: number;
  } | null;
  readonly passive: { readonly failures: number; readonly cooldown_ms: number };
  readonly backends: readonly BackendStatus[];
}

export interface StatusDocument {
  readonly generation: number;
  readonly loaded_at: string;
  readonly started_at: string;
  readonly uptime_s: number;
  /** The traffic listener's client connections (with workers: summed over them). */
  readonly client_connections: {
    /** Open now. */
    readonly open: number;
    /**
     * Closed unanswered since start because server.max_connections were
     * open; with workers, those of exited worker processes included.
     */
    readonly refused: number;
  };
  readonly reloads: {
    /** Reloads applied since start. */
    readonly applied: number;
    /** Reloads refused (invalid file, plugin failed to start): the running config kept serving. */
    readonly refused: number;
    readonly last_applied: { readonly generation: number; readonly at: string; readonly trigger: string; readonly changes: string } | null;
    /** The problems of the last refused reload, as `file:line:col key.path: message`. */
    readonly last_refused: { readonly at: string; readonly problems: readonly string[] } | null;
  };
  readonly pools: Readonly<Record<string, PoolStatus>>;
  /** With `workers` > 1: the processes serving traffic (backend counters above are their sum). */
  readonly workers?: readonly WorkerStatus[];
}

const round1 = (ms: number): number => Math.round(ms * 10) / 10;

export function buildStatus(source: AdminSource, now = Date.now()): StatusDocument {
  const generation = source.generation;
  const reloads = source.reloads;
  const pools: Record<string, PoolStatus> = {};
  for (const pool of generation.pools.values()) {
    const config = pool.config;
    const health = config.health;
    pools[pool.name] = {
      strategy: config.strategy.name,
      health: health
        ? {
            checker: health.checker.name,
            interval_ms: health.interval,
            timeout_ms: health.timeout,
            unhealthy_after: health.unhealthyAfter,
            healthy_after: health.healthyAfter,
          }
        : null,
      passive: { failures: config.passiveFailures, cooldown_ms: config.passiveCooldown },
      backends: pool.backends.map(({ backend, weight }) => {
        const [r1, r2, r3, r4, r5] = backend.responses as [number, number, number, number, number];
        const tally = source.health.tally(backend.url);
        return {
          url: backend.url,
          weight,
          state: backend.state,
          reason: backend.reason,
          changed_at: new Date(backend.changedAt).toISOString(),
          last_probe_ms: backend.lastProbeMs === undefined ? null : round1(backend.lastProbeMs),
          active: backend.active,
          requests: backend.requests,
          failures: backend.failures,
          responses: { '1xx': r1, '2xx': r2, '3xx': r3, '4xx': r4, '5xx': r5 },
          health_checks: tally ? { passed: tally.passed, failed: tally.failed, inconclusive: tally.inconclusive } : null,
        };
      }),
    };
  }
  return {
    generation: generation.id,
    loaded_at: generation.loadedAt.toISOString(),
    started_at: source.startedAt.toISOString(),
    uptime_s: Math.floor((now - source.startedAt.getTime()) / 1000),
    client_connections: { open: source.clientConnections.open, refused: source.clientConnections.refused },
    reloads: {
      applied: reloads.appliedCount,
      refused: reloads.refusedCount,
      last_applied: reloads.lastApplied
        ? {
            generation: reloads.lastApplied.generation,
            at: reloads.lastApplied.at.toISOString(),
            trigger: reloads.lastApplied.trigger,
            changes: reloads.lastApplied.summary,
          }
        : null,
      last_refused: reloads.lastRefused ? { at: reloads.lastRefused.at.toISOString(), problems: reloads.lastRefused.problems } : null,
    },
    pools,
    ...(source.workers ? { workers: source.workers() } : {}),
  };
}
