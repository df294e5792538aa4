/**
 * A running Switchyard's client connection figures — open now, refused past
 * server.max_connections — as its admin listener shows them, in /status and
 * in /metrics, read over real sockets so that a test asserts both at once.
 */
import { parsePrometheusText, sampleValue, type PromFamily } from '../admin/prometheus-text.js';
import { request } from './http-client.js';

export interface ClientFigures {
  readonly open: number | undefined;
  readonly refused: number | undefined;
}

export interface ClientFiguresRead {
  /** `client_connections` of /status. */
  readonly status: ClientFigures;
  /** `switchyard_client_connections_open` and `switchyard_client_connections_refused_total` of /metrics. */
  readonly metrics: ClientFigures;
  /** Every family of /metrics, parsed strictly. */
  readonly families: Map<string, PromFamily>;
}

/** Reads /status, then /metrics, from the admin listener at `admin` (`http://127.0.0.1:PORT`). */
export async function readClientConnections(admin: string): Promise<ClientFiguresRead> {
  const status = await request(`${admin}/status`, { timeoutMs: 5000 });
  if (status.status !== 200) throw new Error(`/status answered ${status.status}: ${status.body}`);
  const metrics = await request(`${admin}/metrics`, { timeoutMs: 5000 });
  if (metrics.status !== 200) throw new Error(`/metrics answered ${metrics.status}: ${metrics.body}`);
  const families = parsePrometheusText(metrics.body);
  const clients = (JSON.parse(status.body) as { client_connections?: ClientFigures }).client_connections;
  return {
    status: { open: clients?.open, refused: clients?.refused },
    metrics: {
      open: sampleValue(families, 'switchyard_client_connections_open'),
      refused: sampleValue(families, 'switchyard_client_connections_refused_total'),
    },
    families,
  };
}
