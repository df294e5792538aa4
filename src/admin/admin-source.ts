/**
 * What the admin listener reads: the generation serving now, the health
 * scheduler's tallies and the reload history. A running Switchyard is one;
 * the admin code never reaches into the traffic server.
 */
import type { Generation } from '../server/generation.js';
import type { ReloadHistory } from '../server/reload-history.js';
import type { ProbeTally } from '../health/health-scheduler.js';

export interface AdminSource {
  readonly generation: Generation;
  readonly startedAt: Date;
  readonly reloads: Pick<ReloadHistory, 'appliedCount' | 'refusedCount' | 'lastApplied' | 'lastRefused'>;
  readonly health: { tally(url: string): Readonly<ProbeTally> | undefined };
}
