/**
 * What the admin listener of a cluster primary reads. Health, reloads and the
 * generation are the primary's own (it owns them); traffic counters live in
 * the workers, so before each /status or /metrics answer they are asked for
 * over IPC, with a short deadline — a worker that does not answer in time is
 * reported (`answered: false`) with its last figures, not waited for.
 * Between answers each worker pushes its counters every COUNTERS_PUSH_MS
 * while they change, so a worker that dies without a word (SIGKILL, a
 * crash) loses at most that last stretch of its counting.
 *
 * The sums are written into the primary's own Backend objects, which serve
 * no traffic in the primary, so status.ts and metrics.ts read them exactly as
 * with one process. Counters of worker processes that exited are kept in a
 * baseline, so a restart does not make request counters go backwards —
 * for the backends the configuration still lists: one a reload removes is
 * forgotten, as in a single process (where its Backend goes), so backends
 * that come and go by address (autoscaled pods) do not pile up here.
 *
 * Client connections are summed the same way: open ones over the running
 * workers, refused ones over the running workers plus every worker process
 * that exited (kept for good: they belong to no backend a reload removes).
 */
import type { AdminSource, WorkerStatus } from '../admin/admin-source.js';
import type { Switchyard } from '../server/switchyard.js';
import { NO_CLIENT_CONNECTIONS, type ClientConnectionFigures } from '../server/client-connection-counts.js';
import type { BackendCounters } from './messages.js';
import type { WorkerSlot } from './worker-slot.js';

/** How long /status and /metrics wait for a worker's counters. */
export const COUNTERS_DEADLINE_MS = 500;

interface Totals {
  active: number;
  requests: number;
  failures: number;
  responses: number[];
  durationCounts: number[];
  durationSumMs: number;
}

function addInto(into: Totals, from: Omit<BackendCounters, 'url'>, withActive: boolean): void {
  if (withActive) into.active += from.active;
  into.requests += from.requests;
  into.failures += from.failures;
  for (let i = 0; i < into.responses.length && i < from.responses.length; i++) into.responses[i]! += from.responses[i]!;
  for (let i = 0; i < into.durationCounts.length && i < from.durationCounts.length; i++) into.durationCounts[i]! += from.durationCounts[i]!;
  into.durationSumMs += from.durationSumMs;
}

function emptyTotals(responses: number, buckets: number): Totals {
  return {
    active: 0,
    requests: 0,
    failures: 0,
    responses: new Array<number>(responses).fill(0),
    durationCounts: new Array<number>(buckets).fill(0),
    durationSumMs: 0,
  };
}

export class ClusterAdminSource implements AdminSource {
  /** Per backend URL: what exited worker processes had counted (no `active`: they have nothing in flight). */
  readonly #baseline = new Map<string, Totals>();
  /** Client connections that exited worker processes refused. */
  #refusedByExited = 0;
  /** The workers' client connections summed, as of the last refresh. */
  #clients: ClientConnectionFigures = NO_CLIENT_CONNECTIONS;
  #refreshing: Promise<void> | undefined;

  constructor(
    private readonly lb: Switchyard,
    private readonly slots: () => readonly WorkerSlot[],
  ) {
    lb.registry.on('released', (backend) => this.#baseline.delete(backend.url));
  }

  get generation(): AdminSource['generation'] {
    return this.lb.generation;
  }

  get startedAt(): Date {
    return this.lb.startedAt;
  }

  get reloads(): AdminSource['reloads'] {
    return this.lb.reloads;
  }

  get health(): AdminSource['health'] {
    return this.lb.health;
  }

  get clientConnections(): ClientConnectionFigures {
    return this.#clients;
  }

  /** Keeps what an exited worker process had counted. */
  retire(counters: readonly BackendCounters[], clients: ClientConnectionFigures): void {
    // Its open connections went with it.
    this.#refusedByExited += clients.refused;
    for (const c of counters) {
      // Already removed by a reload (the worker was still draining it).
      if (this.lb.registry.get(c.url) === undefined) continue;
      let totals = this.#baseline.get(c.url);
      if (totals === undefined) this.#baseline.set(c.url, (totals = emptyTotals(c.responses.length, c.durationCounts.length)));
      addInto(totals, c, false);
    }
  }

  /** Concurrent admin requests share one round of asking. */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#refresh().finally(() => (this.#refreshing = undefined));
    return this.#refreshing;
  }

  async #refresh(): Promise<void> {
    const slots = this.slots();
    await Promise.all(slots.map((slot) => slot.refreshCounters(COUNTERS_DEADLINE_MS)));
    for (const backend of this.lb.registry.all()) {
      const totals = emptyTotals(backend.responses.length, backend.durationCounts.length);
      const base = this.#baseline.get(backend.url);
      if (base !== undefined) addInto(totals, base, false);
      for (const slot of slots) {
        for (const c of slot.counters) if (c.url === backend.url) addInto(totals, c, true);
      }
      backend.active = totals.active;
      backend.requests = totals.requests;
      backend.failures = totals.failures;
      for (let i = 0; i < backend.responses.length; i++) backend.responses[i] = totals.responses[i]!;
      for (let i = 0; i < backend.durationCounts.length; i++) backend.durationCounts[i] = totals.durationCounts[i]!;
      backend.durationSumMs = totals.durationSumMs;
    }
    let open = 0;
    let refused = this.#refusedByExited;
    for (const slot of slots) {
      open += slot.clients.open;
      refused += slot.clients.refused;
    }
    this.#clients = { open, refused };
  }

  workers(): WorkerStatus[] {
    return this.slots().map((slot) => {
      let requests = 0;
      for (const c of slot.counters) requests += c.requests;
      return {
        id: slot.id,
        pid: slot.pid,
        state: slot.state,
        generation: slot.generation,
        started_at: slot.alive && slot.startedAt ? slot.startedAt.toISOString() : null,
        restarts: slot.restarts,
        requests,
        answered: slot.answered,
      };
    });
  }
}
