/**
 * What reloads did, for the admin API and metrics: how many were applied or
 * refused, the last of each, and the errors of a refused one in the form a
 * user acts on (file:line:col).
 */
import { ConfigError, formatIssue, issueAt } from '../config/issues.js';
import { locateKeys } from '../config/toml-locator.js';
import type { LbConfig } from '../config/types.js';
import { diffConfigs, describeChanges, type ConfigChanges } from './config-diff.js';
import { PluginStartError, type Generation } from './generation.js';

export interface AppliedReload {
  /** Generation that went live. */
  readonly generation: number;
  readonly at: Date;
  /** Build-and-swap time, ms. */
  readonly ms: number;
  /** What asked for it: `file saved`, `SIGHUP`, `api`. */
  readonly trigger: string;
  readonly changes: ConfigChanges;
  /** `changes` in one line. */
  readonly summary: string;
}

export interface RefusedReload {
  readonly at: Date;
  /** Every problem, one per line (`file:line:col key.path: message` for config problems). */
  readonly problems: readonly string[];
}

export class ReloadHistory {
  appliedCount = 0;
  refusedCount = 0;
  lastApplied: AppliedReload | undefined;
  lastRefused: RefusedReload | undefined;

  applied(before: LbConfig, next: Generation, ms: number, trigger: string): AppliedReload {
    const changes = diffConfigs(before, next.config);
    this.appliedCount++;
    this.lastApplied = { generation: next.id, at: next.loadedAt, ms, trigger, changes, summary: describeChanges(changes) };
    return this.lastApplied;
  }

  failed(err: unknown): void {
    this.refused(problemsOf(err));
  }

  /** A reload not applied, for the reasons given as problem lines (a cluster's refusal gathers its workers'). */
  refused(problems: readonly string[]): void {
    this.refusedCount++;
    this.lastRefused = { at: new Date(), problems };
  }
}

export function problemsOf(err: unknown): string[] {
  if (err instanceof ConfigError) return err.issues.map(formatIssue);
  return [(err as Error)?.message ?? String(err)];
}

/**
 * A plugin that failed to start becomes a ConfigError at its place in the
 * file when the source is known; anything else is returned as it is.
 */
export function locatePluginFailure(err: unknown, file: string, source: string | undefined): unknown {
  if (!(err instanceof PluginStartError) || source === undefined) return err;
  return new ConfigError([issueAt(file, locateKeys(source), err.segments, err.message)]);
}
