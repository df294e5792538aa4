/**
 * The connections to one backend: at most `connections` of them, idle ones
 * kept for reuse, requests beyond them waiting in order. It replaces
 * undici's Pool on the proxy's path because a proxy needs a small part of
 * what undici does per request (validation of options it already knows
 * are sane, a Request object, its queue and timers, diagnostics channels):
 * measured with bench/instructions.mjs, that part was about a quarter of
 * the instructions a proxied request costs (bench/RESULTS.md). The
 * response is read by Node's own parser (response-parser.ts), the
 * connection opened by undici's connector (TLS, connect timeout:
 * src/pool/backend-connector.ts).
 *
 * Upgrade requests still go through an undici Pool, made on the first one:
 * undici hands a switched connection over as a socket, which the tunnel
 * needs. So does every request when Node's parser cannot be loaded.
 *
 * Idle connections: the most recently used is reused first, so a quiet
 * period lets the surplus age out. One whose backend-given (or default)
 * keep-alive has passed is closed when met instead of reused — a backend
 * closing an idle connection races with a request sent on it — and a sweep
 * every second closes those nobody meets.
 */
import type { Socket } from 'node:net';
import type { buildConnector, Dispatcher } from 'undici';
import { loadPool, type Pool } from '../proxy/undici-parts.js';
import { BackendConnection, type ConnectionOwner } from './backend-connection.js';
import { clientClosed, clientDestroyed, socketError } from './client-errors.js';
import type { BackendRequestOptions, ExchangeHandler } from './exchange-handler.js';
import { ResponseParser } from './response-parser.js';

/** A handler both clients can drive: this one, and undici (Upgrade requests). */
export type BackendHandler = ExchangeHandler & Dispatcher.DispatchHandler;

export interface BackendClientOptions {
  /** Most connections open at once (connecting included). */
  readonly connections: number;
  /** Opens a connection (plain or TLS), failing it past the connect timeout. */
  readonly connect: buildConnector.connector;
  /** How long an idle connection is kept when the backend does not say (`Keep-Alive: timeout=N`). */
  readonly keepAliveTimeout: number;
  /** The most a backend's `Keep-Alive` may ask for. */
  readonly keepAliveMaxTimeout: number;
}

interface Waiting {
  readonly handler: BackendHandler;
  readonly options: BackendRequestOptions;
}

const SWEEP_MS = 1000;

function sweep(client: BackendClient): void {
  client.closeExpired();
}

export class BackendClient implements ConnectionOwner {
  readonly #url: URL;
  readonly #options: BackendClientOptions;
  readonly #connectOptions: buildConnector.Options;
  /** All open connections, busy or idle (not those still connecting). */
  readonly #connections = new Set<BackendConnection>();
  /** Idle connections, most recently used last. */
  readonly #idle: BackendConnection[] = [];
  readonly #waiting: Waiting[] = [];
  #connecting = 0;
  #sweeper: NodeJS.Timeout | undefined;
  /** For Upgrade requests (or all of them, without Node's parser). */
  #undici: Pool | undefined;
  #closing = false;
  #destroyed = false;
  #closed: Promise<void> | undefined;
  #resolveClosed: (() => void) | undefined;

  constructor(url: string, options: BackendClientOptions) {
    this.#url = new URL(url);
    this.#options = options;
    const hostname = this.#url.hostname;
    this.#connectOptions = {
      hostname: hostname.startsWith('[') ? hostname.slice(1, -1) : hostname,
      host: this.#url.host,
      protocol: this.#url.protocol,
      port: this.#url.port || (this.#url.protocol === 'https:' ? '443' : '80'),
      servername: undefined,
      localAddress: null,
      httpSocket: undefined,
    } as unknown as buildConnector.Options;
  }

  /** Sends a request; what happens to it is reported to `handler`. */
  dispatch(options: BackendRequestOptions, handler: BackendHandler): void {
    if (options.upgrade !== undefined || ResponseParser === undefined) {
      this.#viaUndici().dispatch(options as Dispatcher.DispatchOptions, handler);
      return;
    }
    if (this.#closing) {
      handler.onExchangeError(this.#destroyed ? clientDestroyed() : clientClosed());
      return;
    }
    const connection = this.#takeIdle();
    if (connection !== undefined) {
      connection.start(handler, options);
      return;
    }
    this.#waiting.push({ handler, options });
    if (this.#connections.size + this.#connecting < this.#options.connections) this.#open();
  }

  /** Closes once every request sent or waiting has ended; new ones are refused. */
  close(): Promise<void> {
    if (this.#closed === undefined) {
      this.#closing = true;
      const drained = new Promise<void>((resolve) => (this.#resolveClosed = resolve));
      for (const connection of this.#idle) connection.socket.destroy();
      this.#idle.length = 0;
      this.#settleClose();
      const undici = this.#undici;
      this.#closed = undici === undefined ? drained : Promise.all([drained, undici.close().catch(() => {})]).then(() => {});
    }
    return this.#closed;
  }

  /** Fails every request sent or waiting and closes every connection now. */
  destroy(): Promise<void> {
    this.#destroyed = true;
    const closed = this.close();
    const err = clientDestroyed();
    for (const waiting of this.#waiting.splice(0)) waiting.handler.onExchangeError(err);
    for (const connection of [...this.#connections]) connection.destroy(err);
    void this.#undici?.destroy().catch(() => {});
    return closed;
  }

  connectionIdle(connection: BackendConnection): void {
    const next = this.#waiting.shift();
    if (next !== undefined) {
      connection.start(next.handler, next.options);
      return;
    }
    if (this.#closing) {
      connection.socket.destroy();
      return;
    }
    connection.idleSince = performance.now();
    this.#idle.push(connection);
    if (this.#sweeper === undefined) {
      this.#sweeper = setInterval(sweep, SWEEP_MS, this);
      this.#sweeper.unref();
    }
  }

  connectionClosed(connection: BackendConnection): void {
    this.#connections.delete(connection);
    const at = this.#idle.indexOf(connection);
    if (at !== -1) this.#idle.splice(at, 1);
    this.#openForWaiting();
    this.#settleClose();
  }

  /** Closes idle connections past their keep-alive (the sweep). */
  closeExpired(): void {
    const now = performance.now();
    const idle = this.#idle;
    // Every one is checked: a backend's Keep-Alive hint gives its connections a keep-alive of their own.
    for (let i = 0; i < idle.length; ) {
      const connection = idle[i]!;
      if (now - connection.idleSince < connection.keepAliveMs) i++;
      else {
        idle.splice(i, 1);
        connection.socket.destroy();
      }
    }
    if (idle.length === 0 && this.#sweeper !== undefined) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }

  #takeIdle(): BackendConnection | undefined {
    const idle = this.#idle;
    if (idle.length === 0) return undefined;
    const now = performance.now();
    let connection = idle.pop();
    while (connection !== undefined) {
      if (!connection.socket.destroyed && now - connection.idleSince < connection.keepAliveMs) return connection;
      // Past its keep-alive: the backend may be closing it right now. Its 'close' removes it from #connections.
      connection.socket.destroy();
      connection = idle.pop();
    }
    return undefined;
  }

  /** Opens connections for waiting requests that no connection being opened will serve, within the limit. */
  #openForWaiting(): void {
    while (this.#waiting.length > this.#connecting && this.#connections.size + this.#connecting < this.#options.connections) this.#open();
  }

  #open(): void {
    this.#connecting++;
    this.#options.connect(this.#connectOptions, (err, socket) => {
      this.#connecting--;
      if (err !== null || socket === null) {
        this.#connectFailed(err ?? socketError('the connector gave neither a socket nor an error'));
        return;
      }
      if (this.#destroyed) {
        socket.destroy();
        this.#settleClose();
        return;
      }
      const connection = new BackendConnection(
        this,
        socket as unknown as Socket,
        ResponseParser!,
        this.#url.host,
        this.#options.keepAliveTimeout,
        this.#options.keepAliveMaxTimeout,
      );
      this.#connections.add(connection);
      this.connectionIdle(connection);
    });
  }

  /**
   * A connection could not be opened: the request waiting longest is failed
   * with the reason (each waiting request gets a connection attempt of its
   * own, so none waits on the verdict of attempts made for others).
   */
  #connectFailed(err: Error): void {
    const first = this.#waiting.shift();
    this.#openForWaiting();
    if (first !== undefined) first.handler.onExchangeError(err);
    this.#settleClose();
  }

  #settleClose(): void {
    if (this.#resolveClosed === undefined) return;
    if (this.#connections.size > 0 || this.#connecting > 0 || this.#waiting.length > 0) return;
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    const resolve = this.#resolveClosed;
    this.#resolveClosed = undefined;
    resolve();
  }

  #viaUndici(): Pool {
    const UndiciPool = loadPool();
    return (this.#undici ??= new UndiciPool(this.#url.origin, {
      connections: this.#options.connections,
      connect: this.#options.connect,
      keepAliveTimeout: this.#options.keepAliveTimeout,
      keepAliveMaxTimeout: this.#options.keepAliveMaxTimeout,
      keepAliveTimeoutThreshold: 1_000,
      // Per-request timeouts are passed on each dispatch; these are fallbacks.
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
      pipelining: 1,
    }));
  }
}
