/**
 * GET /metrics in the Prometheus text format, via prom-client.
 *
 * Nothing is counted here: every value is read at scrape time from counters
 * the core keeps anyway (Backend.requests/responses/durationCounts, the
 * health scheduler's tallies, the reload counters, the client connection
 * counts), so the request path pays for no metric library. prom-client
 * formats and escapes; each family below is a plain object with `get()`,
 * which is all its Registry asks of a metric.
 *
 * Labels are bounded by the configuration: pool, backend URL, status class,
 * state, result. A backend that several pools share is one set of counters;
 * its `pool` label lists those pools, comma-separated.
 */
import { collectDefaultMetrics, Registry, type Metric } from 'prom-client';
import { DURATION_BUCKETS_MS, type Backend, type BackendState } from '../pool/backend.js';
import type { AdminSource } from './admin-source.js';

type Labels = Record<string, string | number>;

interface Sample {
  readonly value: number;
  readonly labels: Labels;
  /** For histograms: name_bucket, name_sum, name_count. */
  readonly metricName?: string;
}

interface BackendRow {
  readonly pool: string;
  readonly backend: Backend;
}

const CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;
const STATES: readonly BackendState[] = ['up', 'down', 'unknown'];
const BUCKET_LE = DURATION_BUCKETS_MS.map((ms) => ms / 1000);

/** A metric family whose samples are read when scraped. */
class ScrapedFamily {
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge' | 'histogram',
    private readonly read: () => Sample[],
  ) {}

  async get(): Promise<{ name: string; help: string; type: string; aggregator: 'sum'; values: Sample[] }> {
    return { name: this.name, help: this.help, type: this.type, aggregator: 'sum', values: this.read() };
  }
}

export class AdminMetrics {
  readonly registry = new Registry();

  constructor(private readonly source: AdminSource) {
    // Process metrics (CPU, memory, event loop lag, GC) are read at scrape time too.
    collectDefaultMetrics({ register: this.registry });
    const families = [
      new ScrapedFamily('switchyard_requests_total', 'Responses received from backends, by status class.', 'counter', () =>
        this.#perBackend((row, out) => {
          for (let c = 0; c < CLASSES.length; c++) {
            out.push({ value: row.backend.responses[c]!, labels: { pool: row.pool, backend: row.backend.url, class: CLASSES[c]! } });
          }
        }),
      ),
      new ScrapedFamily(
        'switchyard_request_failures_total',
        'Requests that failed at the backend: connect error, reset, timeout or invalid response.',
        'counter',
        () => this.#perBackend((row, out) => out.push({ value: row.backend.failures, labels: this.#labels(row) })),
      ),
      new ScrapedFamily(
        'switchyard_request_duration_seconds',
        'Time from sending a request to a backend to the end of its response (or its failure).',
        'histogram',
        () => this.#perBackend((row, out) => this.#histogram(row, out)),
      ),
      new ScrapedFamily(
        'switchyard_backend_active_connections',
        'Requests in flight to the backend now.',
        'gauge',
        () => this.#perBackend((row, out) => out.push({ value: row.backend.active, labels: this.#labels(row) })),
      ),
      new ScrapedFamily(
        'switchyard_backend_up',
        '1 while the backend is in rotation (up, or unknown: not checked yet), 0 while it is down.',
        'gauge',
        () => this.#perBackend((row, out) => out.push({ value: row.backend.state === 'down' ? 0 : 1, labels: this.#labels(row) })),
      ),
      new ScrapedFamily('switchyard_backend_state', 'The backend\'s health state: 1 for its current state, 0 for the others.', 'gauge', () =>
        this.#perBackend((row, out) => {
          for (const state of STATES) {
            out.push({ value: row.backend.state === state ? 1 : 0, labels: { ...this.#labels(row), state } });
          }
        }),
      ),
      new ScrapedFamily('switchyard_health_checks_total', 'Active health check results, by backend and result (pass | fail | inconclusive: it could not run for lack of local resources).', 'counter', () =>
        this.#perBackend((row, out) => {
          const tally = this.source.health.tally(row.backend.url);
          if (tally === undefined) return;
          out.push({ value: tally.passed, labels: { ...this.#labels(row), result: 'pass' } });
          out.push({ value: tally.failed, labels: { ...this.#labels(row), result: 'fail' } });
          out.push({ value: tally.inconclusive, labels: { ...this.#labels(row), result: 'inconclusive' } });
        }),
      ),
      new ScrapedFamily(
        'switchyard_health_check_last_duration_seconds',
        'How long the last active health check of the backend took.',
        'gauge',
        () =>
          this.#perBackend((row, out) => {
            if (row.backend.lastProbeMs !== undefined) out.push({ value: row.backend.lastProbeMs / 1000, labels: this.#labels(row) });
          }),
      ),
      new ScrapedFamily('switchyard_client_connections_open', 'Client connections open on the traffic listener now (with workers: over all of them).', 'gauge', () => [
        { value: this.source.clientConnections.open, labels: {} },
      ]),
      new ScrapedFamily(
        'switchyard_client_connections_refused_total',
        'Client connections closed unanswered because server.max_connections were already open (with workers: a worker held its share; summed over them). ' +
          'If it rises, raise server.max_connections together with the open-files limit (ulimit -n, systemd LimitNOFILE: two descriptors per proxied connection), or add workers or instances.',
        'counter',
        () => [{ value: this.source.clientConnections.refused, labels: {} }],
      ),
      new ScrapedFamily('switchyard_config_reloads_total', 'Configuration reloads, by result (success | failure).', 'counter', () => [
        { value: this.source.reloads.appliedCount, labels: { result: 'success' } },
        { value: this.source.reloads.refusedCount, labels: { result: 'failure' } },
      ]),
      new ScrapedFamily('switchyard_config_generation', 'Number of the configuration generation serving now (1 at start, +1 per applied reload).', 'gauge', () => [
        { value: this.source.generation.id, labels: {} },
      ]),
      new ScrapedFamily('switchyard_config_loaded_timestamp_seconds', 'When the configuration serving now was loaded (Unix time).', 'gauge', () => [
        { value: this.source.generation.loadedAt.getTime() / 1000, labels: {} },
      ]),
    ];
    const workers = source.workers?.bind(source);
    if (workers !== undefined) {
      families.push(
        new ScrapedFamily('switchyard_workers', 'Worker processes, by state (starting | serving | stopping | restarting).', 'gauge', () => {
          const counts = { starting: 0, serving: 0, stopping: 0, restarting: 0 };
          for (const worker of workers()) counts[worker.state]++;
          return Object.entries(counts).map(([state, value]) => ({ value, labels: { state } }));
        }),
        new ScrapedFamily('switchyard_worker_restarts_total', 'Restarts of a worker slot after its process exited unexpectedly.', 'counter', () =>
          workers().map((worker) => ({ value: worker.restarts, labels: { worker: worker.id } })),
        ),
      );
    }
    for (const family of families) this.registry.registerMetric(family as unknown as Metric);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text. */
  scrape(): Promise<string> {
    return this.registry.metrics();
  }

  #labels(row: BackendRow): Labels {
    return { pool: row.pool, backend: row.backend.url };
  }

  /** Calls `emit` once per backend of the serving generation, each with the pools that list it. */
  #perBackend(emit: (row: BackendRow, out: Sample[]) => void): Sample[] {
    const pools = new Map<Backend, string[]>();
    for (const pool of this.source.generation.pools.values()) {
      for (const { backend } of pool.backends) {
        const names = pools.get(backend);
        if (names === undefined) pools.set(backend, [pool.name]);
        else names.push(pool.name);
      }
    }
    const out: Sample[] = [];
    for (const [backend, names] of pools) emit({ pool: names.join(','), backend }, out);
    return out;
  }

  #histogram(row: BackendRow, out: Sample[]): void {
    const name = 'switchyard_request_duration_seconds';
    const labels = this.#labels(row);
    const counts = row.backend.durationCounts;
    let cumulative = 0;
    for (let i = 0; i < BUCKET_LE.length; i++) {
      cumulative += counts[i]!;
      out.push({ metricName: `${name}_bucket`, value: cumulative, labels: { ...labels, le: BUCKET_LE[i]! } });
    }
    cumulative += counts[BUCKET_LE.length]!;
    out.push({ metricName: `${name}_bucket`, value: cumulative, labels: { ...labels, le: '+Inf' } });
    out.push({ metricName: `${name}_sum`, value: row.backend.durationSumMs / 1000, labels });
    out.push({ metricName: `${name}_count`, value: cumulative, labels });
  }
}
