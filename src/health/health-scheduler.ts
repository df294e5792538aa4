/**
 * Active health checking: one probe loop per backend URL, whatever number of
 * pools list it, so N pools sharing a backend still probe it once per
 * interval. It knows no checker by name: each pool's checker instance comes
 * from the configuration generation (`healthCheckers`), and outcomes reach
 * the rest of the process only through `registry.setState()`.
 *
 * It depends on nothing of the traffic server — a generation-shaped plan in,
 * state changes out — so it can move into a process of its own that pushes
 * state to workers.
 *
 * Per backend: never more than one probe in flight; the next one is due an
 * interval (± a little jitter) after the previous one was due, or starts
 * right after it ended when it took longer. `unhealthy_after` consecutive failures take a
 * backend out of rotation, `healthy_after` consecutive successes bring it
 * back. A backend nobody has checked yet is 'unknown' and serves; its first
 * success makes it 'up' at once.
 *
 * A probe that could not run because this process is short of a resource of
 * its own (EMFILE…: runProbe calls it inconclusive) leaves the backend's
 * state and consecutive counts as they were: when every probe fails that
 * way, every backend would otherwise go down, and the pool would answer 503
 * until the checks passed again after the shortage was over. It is counted
 * apart (`inconclusive`) and logged as a warning that says what to do,
 * repeats counted: while the shortage lasts, every probe of every backend
 * would log the same line.
 */
import type { HealthConfig } from '../config/types.js';
import { describeShortage, type LocalResourceCode } from '../local-resource-error.js';
import type { HealthInstance, Logger } from '../plugin/types.js';
import type { Backend, StateChange } from '../pool/backend.js';
import type { BackendRegistry } from '../pool/backend-registry.js';
import { RepeatedWarnings } from '../server/repeated-warnings.js';
import { runProbe, type ProbeOutcome } from './probe.js';

/** A pool as the scheduler needs it (a PoolRuntime is one). */
export interface HealthPlanPool {
  readonly name: string;
  readonly config: { readonly health: HealthConfig | undefined };
  readonly backends: readonly { readonly backend: Backend }[];
}

/** What the scheduler follows (a Generation is one). */
export interface HealthPlan {
  readonly pools: ReadonlyMap<string, HealthPlanPool>;
  readonly healthCheckers: ReadonlyMap<string, HealthInstance>;
  /**
   * A probe holds the plan it started under from enter() to leave(), as a
   * request does: a replaced plan does not close its checkers under a probe
   * that a reload let finish.
   */
  enter(): void;
  leave(): void;
}

/** Probe results of one backend since its loop started. */
export interface ProbeTally {
  passed: number;
  failed: number;
  /** Probes that could not run for lack of local resources (EMFILE…): neither passed nor failed. */
  inconclusive: number;
}

/** How a backend is probed: by the first pool (in config order) that lists it and has a health table. */
interface Assignment {
  readonly plan: HealthPlan;
  readonly backend: Backend;
  readonly pool: string;
  readonly checker: HealthInstance;
  readonly health: HealthConfig;
}

/** Share of the interval a probe's start may move either way, so probes of many backends spread out. */
const JITTER = 0.05;
/** The first probe of a new backend comes within this share of its interval (at most FIRST_PROBE_MAX_MS). */
const FIRST_PROBE_SPREAD = 0.2;
const FIRST_PROBE_MAX_MS = 1000;

/** Whether a probe started under `a` is also the probe `b` would send: same backend, checker plugin and options, timeout. */
function probesAlike(a: Assignment, b: Assignment): boolean {
  return (
    a.backend === b.backend &&
    a.health.timeout === b.health.timeout &&
    a.health.checker.definition === b.health.checker.definition &&
    a.health.checker.identity === b.health.checker.identity
  );
}

class ProbeLoop {
  successes = 0;
  failures = 0;
  timer: NodeJS.Timeout | undefined;
  /** Set while a probe is in flight. */
  controller: AbortController | undefined;
  /** performance.now() when the current (or last) probe started. */
  startedAt = 0;
  /** performance.now() the scheduled probe is due at: the next is due an interval later, so timer lateness does not add up. */
  dueAt = 0;
  readonly tally: ProbeTally = { passed: 0, failed: 0, inconclusive: 0 };

  constructor(public assignment: Assignment) {}

  get backend(): Backend {
    return this.assignment.backend;
  }

  /** Abandons the probe in flight (its outcome will be ignored) and the scheduled one. */
  halt(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const controller = this.controller;
    this.controller = undefined;
    controller?.abort(new DOMException('health check abandoned', 'AbortError'));
  }
}

export interface HealthSchedulerOptions {
  /** Random numbers in [0, 1) for jitter; tests may make it fixed. */
  readonly random?: () => number;
  /** Window within which repeats of an inconclusive-probe warning are counted, not logged (default 10 s). */
  readonly warningWindowMs?: number;
}

export class HealthScheduler {
  readonly #loops = new Map<string, ProbeLoop>();
  readonly #random: () => number;
  readonly #warnings: RepeatedWarnings;
  #stopped = false;
  readonly #onChange = ({ backend, from, to }: StateChange): void => {
    const loop = this.#loops.get(backend.url);
    if (loop === undefined || loop.backend !== backend) return;
    // A change made elsewhere (passive detection) restarts the count toward the
    // opposite threshold: `healthy_after` means successes since it went down.
    if (to === 'down') loop.successes = 0;
    else if (from === 'down') loop.failures = 0;
  };

  constructor(
    private readonly registry: BackendRegistry,
    private readonly logger: Logger,
    options: HealthSchedulerOptions = {},
  ) {
    this.#random = options.random ?? Math.random;
    this.#warnings = new RepeatedWarnings(logger, options.warningWindowMs);
    registry.on('change', this.#onChange);
  }

  /**
   * Follows `plan` (the generation now serving): starts loops for newly
   * checked backends, stops those no pool checks any more, and moves the
   * rest to the new checker instances. Surviving backends keep their state
   * and their consecutive counts. A probe in flight finishes and counts when
   * the reload left its check as it was (same checker, options and
   * timeout): abandoning it would lose its verdict, and reloads more frequent
   * than `timeout` would then never let a hung backend be taken out. When the
   * check changed, it is abandoned and a new one starts shortly.
   */
  sync(plan: HealthPlan): void {
    if (this.#stopped) return;
    const wanted = new Map<string, Assignment>();
    const served = new Set<string>();
    for (const pool of plan.pools.values()) {
      const health = pool.config.health;
      const checker = plan.healthCheckers.get(pool.name);
      for (const { backend } of pool.backends) {
        served.add(backend.url);
        if (health === undefined || checker === undefined || wanted.has(backend.url)) continue;
        wanted.set(backend.url, { plan, backend, pool: pool.name, checker, health });
      }
    }

    for (const [url, loop] of this.#loops) {
      if (wanted.has(url)) continue;
      loop.halt();
      this.#loops.delete(url);
      // /status and /metrics show the latency of checks that run, not of the last one ever made.
      loop.backend.lastProbeMs = undefined;
      // A backend still in use leaves the verdict of checks that no longer
      // exist: down, nothing would bring it back; up, nothing vouches for it.
      // It serves like any unchecked one.
      if (served.has(url) && loop.backend.state !== 'unknown') {
        this.registry.setState(loop.backend, 'unknown', 'active health checks were removed from its pool');
      }
    }

    for (const [url, assignment] of wanted) {
      const loop = this.#loops.get(url);
      if (loop === undefined) {
        const created = new ProbeLoop(assignment);
        this.#loops.set(url, created);
        this.#schedule(created, this.#random() * Math.min(assignment.health.interval * FIRST_PROBE_SPREAD, FIRST_PROBE_MAX_MS));
        continue;
      }
      const previous = loop.assignment;
      loop.assignment = assignment;
      if (previous.backend !== assignment.backend) {
        loop.successes = 0;
        loop.failures = 0;
      }
      if (loop.controller !== undefined) {
        // One that goes on schedules the next itself, by the new interval: a timer here would send a second probe beside it.
        if (!probesAlike(previous, assignment)) {
          loop.halt();
          this.#schedule(loop, this.#jitter(assignment.health.interval));
        }
      } else if (assignment.health.interval < previous.health.interval) {
        // Do not wait out the old, longer interval.
        const due = Math.max(0, loop.startedAt + assignment.health.interval - performance.now());
        this.#schedule(loop, due);
      }
    }
  }

  /** Abandons every probe and stops scheduling (shutdown). */
  stop(): void {
    this.#stopped = true;
    for (const loop of this.#loops.values()) loop.halt();
    this.#loops.clear();
    this.registry.off('change', this.#onChange);
    this.#warnings.flush();
  }

  /** Probe results of the backend at `url`, while it is checked. */
  tally(url: string): Readonly<ProbeTally> | undefined {
    return this.#loops.get(url)?.tally;
  }

  /** The pool whose health table checks the backend at `url`, while it is checked. */
  checkedBy(url: string): string | undefined {
    return this.#loops.get(url)?.assignment.pool;
  }

  /** Backend URLs with a probe loop. */
  get checkedUrls(): string[] {
    return [...this.#loops.keys()];
  }

  #jitter(interval: number): number {
    return interval * JITTER * (this.#random() * 2 - 1);
  }

  #schedule(loop: ProbeLoop, delayMs: number): void {
    clearTimeout(loop.timer);
    const delay = Math.max(0, delayMs);
    loop.dueAt = performance.now() + delay;
    loop.timer = setTimeout(this.#probe, delay, loop);
    loop.timer.unref();
  }

  readonly #probe = async (loop: ProbeLoop): Promise<void> => {
    loop.timer = undefined;
    if (this.#stopped || this.#loops.get(loop.backend.url) !== loop) return;
    const { plan, checker, health, backend } = loop.assignment;
    const controller = new AbortController();
    loop.controller = controller;
    loop.startedAt = performance.now();
    plan.enter();
    let outcome: ProbeOutcome | undefined;
    try {
      outcome = await runProbe(checker, backend.target, controller, health.timeout);
    } finally {
      plan.leave();
    }
    // Abandoned (reload, shutdown) or superseded: this probe no longer counts.
    if (outcome === undefined || loop.controller !== controller) return;
    loop.controller = undefined;
    // A reload may have moved the loop to new settings meanwhile: it counts and schedules by those.
    const current = loop.assignment.health;
    try {
      this.#record(loop, outcome);
    } catch (err) {
      // A throwing 'change' listener must not end this backend's checks.
      this.logger.error({ err, backend: backend.url }, `recording the health of ${backend.url} failed: ${(err as Error).message}`);
    }
    this.#schedule(loop, loop.dueAt + current.interval + this.#jitter(current.interval) - performance.now());
  };

  #record(loop: ProbeLoop, outcome: ProbeOutcome): void {
    if (outcome.inconclusive !== undefined) {
      this.#recordInconclusive(loop, outcome.inconclusive);
      return;
    }
    const { backend, health, pool } = loop.assignment;
    backend.lastProbeMs = outcome.ms;
    if (outcome.healthy) {
      loop.tally.passed++;
      loop.failures = 0;
      loop.successes++;
      if (backend.state === 'unknown' || (backend.state === 'down' && loop.successes >= health.healthyAfter)) {
        this.registry.setState(backend, 'up', outcome.reason);
      }
      return;
    }
    loop.tally.failed++;
    loop.successes = 0;
    loop.failures++;
    if (backend.state !== 'down' && loop.failures >= health.unhealthyAfter) {
      this.registry.setState(backend, 'down', outcome.reason);
    } else {
      this.logger.debug(
        { pool, backend: backend.url, reason: outcome.reason, consecutive: loop.failures, state: backend.state },
        `health check of ${backend.url} failed (${loop.failures} in a row): ${outcome.reason}`,
      );
    }
  }

  /**
   * The check could not run: nothing about the backend changes — state,
   * reason, consecutive counts, nor `last_probe_ms` (the probe timed no
   * exchange with it). One warning per shortage code, whichever backend's
   * probe met it: the shortage is this process's, not a backend's.
   */
  #recordInconclusive(loop: ProbeLoop, code: LocalResourceCode): void {
    const { backend, pool } = loop.assignment;
    loop.tally.inconclusive++;
    this.#warnings.warn(
      code,
      'health check',
      { pool, backend: backend.url, err: code, state: backend.state },
      `health check of ${backend.url} could not run, so it counts neither way and the backend stays ${backend.state}: ${describeShortage(code)}`,
    );
  }
}
