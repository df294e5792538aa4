/**
 * What the admin listener reads: the generation serving now, the health
 * scheduler's tallies and the reload history. A running Switchyard is one;
 * the admin code never reaches into the traffic server.
 */
import type { Generation } from '../server/generation.js';
import type { ReloadHistory } from '../server/reload-history.js';
import type { ProbeTally } from '../health/health-scheduler.js';
import type { ClientConnectionFigures } from '../server/client-connection-counts.js';

export interface AdminSource {
  readonly generation: Generation;
  readonly startedAt: Date;
  readonly reloads: Pick<ReloadHistory, 'appliedCount' | 'refusedCount' | 'lastApplied' | 'lastRefused'>;
  readonly health: { tally(url: string): Readonly<ProbeTally> | undefined };
  /** Client connections open now and refused past server.max_connections since start (a cluster primary: its workers' sum, as of refresh()). */
  readonly clientConnections: ClientConnectionFigures;
  /**
   * Brings the backends' counters up to date before /status or /metrics is
   * answered (a cluster primary collects them from its workers); absent when
   * they are always current.
   */
  refresh?(): Promise<void>;
  /** The worker processes serving traffic, for /status and /metrics; absent with one process. */
  workers?(): readonly WorkerStatus[];
}

/** One worker process of a cluster, as /status shows it. */
export interface WorkerStatus {
  /** Its slot, 1…N: stays the same when the process is restarted. */
  readonly id: number;
  /** null while no process runs in the slot (waiting to be restarted). */
  readonly pid: number | null;
  readonly state: 'starting' | 'serving' | 'stopping' | 'restarting';
  /** The generation it serves; null until it has started. */
  readonly generation: number | null;
  /** When its current process started (ISO 8601). */
  readonly started_at: string | null;
  /** Times the slot's process was restarted after exiting unexpectedly. */
  readonly restarts: number;
  /** Requests its current process sent to backends, as of its last answer. */
  readonly requests: number;
  /** False when it did not answer the last request for counters in time: its figures are from an earlier answer. */
  readonly answered: boolean;
}
