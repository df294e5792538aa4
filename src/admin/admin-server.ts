/**
 * The admin listener, separate from traffic (`[admin] listen`):
 *   GET /healthz  200 "ok" while the proxy serves (a load balancer in front checks this)
 *   GET /status   JSON snapshot of pools and backends (see status.ts)
 *   GET /metrics  Prometheus text format (see metrics.ts)
 *   GET /         the dashboard (see dashboard.ts)
 * Read-only: nothing here changes what the proxy does.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ListenAddress } from '../config/types.js';
import type { Logger } from '../plugin/types.js';
import type { AdminSource } from './admin-source.js';
import { DASHBOARD_CSS, DASHBOARD_HTML, DASHBOARD_JS, FAVICON_SVG } from './dashboard.js';
import { AdminMetrics } from './metrics.js';
import { buildStatus } from './status.js';

interface StaticAsset {
  readonly type: string;
  readonly body: Buffer;
}

const STATIC: ReadonlyMap<string, StaticAsset> = new Map([
  ['/', { type: 'text/html; charset=utf-8', body: Buffer.from(DASHBOARD_HTML) }],
  ['/dashboard.css', { type: 'text/css; charset=utf-8', body: Buffer.from(DASHBOARD_CSS) }],
  ['/dashboard.js', { type: 'text/javascript; charset=utf-8', body: Buffer.from(DASHBOARD_JS) }],
  ['/favicon.svg', { type: 'image/svg+xml', body: Buffer.from(FAVICON_SVG) }],
]);

/** The dashboard loads only its own files and talks only to this listener. */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export class AdminServer {
  readonly metrics: AdminMetrics;
  #server: http.Server | undefined;
  #listen: ListenAddress | undefined;
  #address: AddressInfo | undefined;
  #closed = false;

  constructor(
    private readonly source: AdminSource,
    private readonly logger: Logger,
  ) {
    this.metrics = new AdminMetrics(source);
  }

  /** Where it is bound now; undefined while off. */
  get address(): AddressInfo | undefined {
    return this.#address;
  }

  /** The configured address it is bound to (as written in lb.toml). */
  get listenConfig(): ListenAddress | undefined {
    return this.#listen;
  }

  /**
   * Binds to `listen`. When already bound elsewhere, the new address is bound
   * first and the old one closed after, so a failed rebind leaves the admin
   * API where it was (and throws).
   */
  async bind(listen: ListenAddress): Promise<AddressInfo> {
    const server = http.createServer({ requireHostHeader: false }, this.#onRequest);
    server.keepAliveTimeout = 5_000;
    // No maxConnections (server.max_connections is the traffic listener's): this one is
    // local and takes a handful of short requests, and when the traffic listener is full
    // /healthz and /status are what an operator needs to reach.
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(listen.port, listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    if (this.#closed) {
      // close() ran while this bind was under way (shutdown during a reload).
      await closeServer(server);
      throw new Error('the admin listener was closed while it was binding');
    }
    const previous = this.#server;
    this.#server = server;
    this.#listen = listen;
    this.#address = server.address() as AddressInfo;
    if (previous) await closeServer(previous);
    return this.#address;
  }

  /** Stops listening for good (a closed AdminServer does not bind again). */
  async close(): Promise<void> {
    this.#closed = true;
    const server = this.#server;
    this.#server = undefined;
    this.#listen = undefined;
    this.#address = undefined;
    if (server) await closeServer(server);
  }

  readonly #onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    void this.#serve(req, res).catch((err: unknown) => {
      this.logger.error({ err, path: req.url }, `admin request ${req.method} ${req.url} failed: ${(err as Error).message}`);
      if (!res.headersSent) send(res, req, 500, 'text/plain; charset=utf-8', 'internal error; see the proxy log\n');
      else res.destroy();
    });
  };

  async #serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    req.resume();
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      send(res, req, 405, 'text/plain; charset=utf-8', 'the admin API is read-only: use GET\n');
      return;
    }
    switch (path) {
      case '/healthz':
        // A cluster serves while at least one of its workers does.
        if (this.source.workers?.().some((w) => w.state === 'serving') === false) {
          send(res, req, 503, 'text/plain; charset=utf-8', 'no worker process is serving right now; see the proxy log\n');
          return;
        }
        send(res, req, 200, 'text/plain; charset=utf-8', 'ok\n');
        return;
      case '/status':
        await this.source.refresh?.();
        send(res, req, 200, 'application/json; charset=utf-8', `${JSON.stringify(buildStatus(this.source), null, 2)}\n`);
        return;
      case '/metrics':
        await this.source.refresh?.();
        send(res, req, 200, this.metrics.contentType, await this.metrics.scrape());
        return;
    }
    const asset = STATIC.get(path);
    if (asset !== undefined) {
      res.setHeader('content-security-policy', CSP);
      send(res, req, 200, asset.type, asset.body);
      return;
    }
    send(res, req, 404, 'text/plain; charset=utf-8', `no such admin endpoint: ${path}; try /, /healthz, /status or /metrics\n`);
  }
}

function send(res: http.ServerResponse, req: http.IncomingMessage, status: number, type: string, body: string | Buffer): void {
  res.writeHead(status, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

function closeServer(server: http.Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    // The dashboard polls over keep-alive: without this, close() would wait for the browser.
    server.closeAllConnections();
  });
}
