/**
 * The traffic listener. Every request is served by the generation that was
 * current when it arrived; swapping generations is one assignment.
 */
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo, Socket } from 'node:net';
import { LbError } from '../errors.js';
import type { ServerConfig } from '../config/types.js';
import type { Logger } from '../plugin/types.js';
import { LocalResponse, ProxyContext } from '../pipeline/context.js';
import { stripRequestHopByHop } from '../proxy/hop-by-hop.js';
import { asLbError, writeError } from './error-response.js';
import type { Generation, RouteTarget } from './generation.js';

const kContext = Symbol('switchyard.context');
const kGeneration = Symbol('switchyard.generation');

type TrackedResponse = http.ServerResponse & { [kContext]?: ProxyContext; [kGeneration]?: Generation };

const NO_ROUTE = new LbError('LB_ERR_NO_ROUTE');
const BODY_TOO_LARGE = new LbError('LB_ERR_BODY_TOO_LARGE');

/** When the response is done (or the client went away): release the generation, cancel a pending upstream. */
function onResponseClose(this: TrackedResponse): void {
  const ctx = this[kContext];
  if (ctx !== undefined && !this.writableFinished) ctx.discardUpstream();
  this[kGeneration]!.leave();
}

/** "Example.COM:8080" → "example.com"; "[::1]:80" → "[::1]". */
export function hostWithoutPort(host: string | undefined): string {
  if (host === undefined) return '';
  let end = host.length;
  if (host.charCodeAt(0) === 91 /* [ */) end = host.indexOf(']') + 1 || end;
  else {
    const colon = host.indexOf(':');
    if (colon !== -1) end = colon;
  }
  return host.slice(0, end).toLowerCase();
}

export class TrafficServer {
  readonly server: http.Server;
  readonly protocol: 'http' | 'https';
  generation: Generation;
  readonly #sockets = new Set<Socket>();

  constructor(
    generation: Generation,
    private readonly logger: Logger,
  ) {
    this.generation = generation;
    const config = generation.config.server;
    const options = TrafficServer.serverOptions(config);
    this.protocol = config.tls ? 'https' : 'http';
    this.server = config.tls
      ? https.createServer({ ...options, cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) }, this.#onRequest)
      : http.createServer(options, this.#onRequest);
    this.server.keepAliveTimeout = config.idleTimeout;
    this.server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => this.#onClientError(err, socket));
  }

  static serverOptions(config: ServerConfig): http.ServerOptions {
    return {
      maxHeaderSize: config.maxHeaderSize,
      headersTimeout: config.headersTimeout,
      keepAliveTimeout: config.idleTimeout,
      requestTimeout: 0,
      requireHostHeader: true,
      noDelay: true,
    };
  }

  async listen(): Promise<AddressInfo> {
    const { host, port } = this.generation.config.server.listen;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    return this.server.address() as AddressInfo;
  }

  /** Stops accepting; resolves when every connection has closed (idle ones are closed now). */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    await closed;
  }

  /** Cuts every remaining connection; returns how many there were. */
  destroyConnections(): number {
    const count = this.#sockets.size;
    for (const socket of this.#sockets) socket.destroy();
    return count;
  }

  get connectionCount(): number {
    return this.#sockets.size;
  }

  #onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const status =
      err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' :
      err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  }

  readonly #onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const generation = this.generation;
    generation.enter();
    (res as TrackedResponse)[kGeneration] = generation;
    res.once('close', onResponseClose);

    const url = req.url!;
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    const host = hostWithoutPort(req.headers.host);
    const target = generation.router.match(req.method!, host, path);
    if (target === undefined) {
      writeError(req, res, NO_ROUTE);
      return;
    }
    const contentLength = req.headers['content-length'];
    if (contentLength !== undefined && Number(contentLength) > generation.config.server.maxBody) {
      writeError(req, res, BODY_TOO_LARGE);
      return;
    }
    const ctx = new ProxyContext(req, res, target.pool, host, url, this.protocol);
    (res as TrackedResponse)[kContext] = ctx;
    stripRequestHopByHop(ctx.headers);
    ctx.clientIp = generation.forwarded.apply(ctx.headers, req.socket.remoteAddress ?? '', req.headers.host, this.protocol);
    void this.#serve(ctx, target);
  };

  async #serve(ctx: ProxyContext, target: RouteTarget): Promise<void> {
    const { req, res } = ctx;
    try {
      await target.handler(ctx);
    } catch (err) {
      ctx.discardUpstream();
      const error = asLbError(err);
      if (error.code === 'LB_ERR_PLUGIN' || error.status >= 500) {
        this.logger.warn(
          { code: error.code, route: target.name, pool: target.pool.name, backend: ctx.backend?.url, err: error.cause ?? error.message },
          error.message,
        );
      }
      writeError(req, res, error);
      return;
    }
    const response = ctx.response;
    if (response === undefined) {
      writeError(req, res, new LbError('LB_ERR_PLUGIN', 'The pipeline ended without a response: a middleware neither called next() nor ctx.respond().'));
      return;
    }
    if (res.destroyed) {
      ctx.discardUpstream();
      return;
    }
    if (response instanceof LocalResponse) {
      const body = response.body;
      if (body !== undefined && response.headers['content-length'] === undefined) {
        response.headers['content-length'] = String(Buffer.byteLength(body));
      }
      res.writeHead(response.status, response.headers);
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    res.writeHead(response.status, response.headersForWrite());
    response.exchange.attach(res);
  }
}
