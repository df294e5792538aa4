/**
 * The traffic listener. Every request is served by the generation that is
 * current when its turn comes; swapping generations is one assignment.
 * Requests of one connection are served one after another
 * (connection-turn.ts).
 *
 * Before anything is routed, a request passes the guard (framing, Host,
 * version, header count: request-guard.ts) and its target is normalized
 * once (path-normalizer.ts); routing and forwarding both use that target.
 * Upgrade requests take the same way through the pipeline, then become a
 * tunnel (proxy/upgrade.ts).
 *
 * Past its client connection limit (client-connection-limit.ts) a new
 * connection is closed as soon as it is accepted, before a byte is read — as
 * nginx does when worker_connections run out — and a warning says so; it is
 * counted too (client-connection-counts.ts), for /status and /metrics.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { LbError } from '../errors.js';
import type { ServerConfig } from '../config/types.js';
import type { Logger } from '../plugin/types.js';
import { BackendResponse, LocalResponse, ProxyContext } from '../pipeline/context.js';
import { stripRequestHopByHop } from '../proxy/hop-by-hop.js';
import { normalizeTarget, splitAbsoluteForm } from '../proxy/path-normalizer.js';
import {
  openTunnel,
  stopWatchingHandshakeClient,
  switchingProtocolsHead,
  tunnelledProtocols,
  UpgradeExchange,
  watchHandshakeClient,
} from '../proxy/upgrade.js';
import { answerParserError, asLbError, writeError } from './error-response.js';
import type { Generation, RouteTarget } from './generation.js';
import { RequestBody } from './request-body.js';
import { failWholeBody, isWholeBody, readWholeBody } from './whole-body.js';
import { checkRequest, isValidHostHeader } from './request-guard.js';
import { passTurn, takeTurn, waitTurn } from './connection-turn.js';
import { readListenerCertificate } from './listener-settings.js';
import { RepeatedWarnings } from './repeated-warnings.js';
import type { ClientConnectionLimit } from './client-connection-limit.js';
import type { ClientConnectionCounts } from './client-connection-counts.js';
import { closeAfterResponse, drainUnreadBody, hasUnreadBody, isClosing, LINGER_MS, settleUnreadBody } from './unread-body.js';

const kContext = Symbol('switchyard.context');
const kGeneration = Symbol('switchyard.generation');
const kExpectsContinue = Symbol('switchyard.expectsContinue');

type TrackedResponse = ServerResponse & { [kContext]?: ProxyContext; [kGeneration]?: Generation; [kExpectsContinue]?: true };

/**
 * An Upgrade or CONNECT request, for which Node hands over the raw socket,
 * that arrived while a response was still in flight on its connection.
 */
class WaitingHandover {
  constructor(
    readonly req: IncomingMessage,
    readonly head: Buffer,
  ) {}
}

/** What waits for its turn on a connection: the response of a request, or a handed-over socket. */
type WaitingRequest = ServerResponse | WaitingHandover;

const NO_ROUTE = new LbError('LB_ERR_NO_ROUTE');
const BODY_TOO_LARGE = new LbError('LB_ERR_BODY_TOO_LARGE');
const BAD_TARGET = new LbError(
  'LB_ERR_BAD_REQUEST',
  'The request target is not accepted: send an origin-form path without "#", "\\", "%00", bad escapes or ".." above the root.',
);
const BAD_AUTHORITY = new LbError('LB_ERR_BAD_REQUEST', 'An absolute request target must be http(s)://host[:port]/path.');
const MALFORMED_BODY = new LbError('LB_ERR_BAD_REQUEST', 'The request body is malformed (bad chunked framing).');
const UPGRADE_WITH_BODY = new LbError('LB_ERR_BAD_REQUEST', 'An Upgrade request cannot carry a body.');
const CONNECT_REFUSED = new LbError('LB_ERR_METHOD_NOT_ALLOWED');
const NO_RESPONSE = new LbError('LB_ERR_PLUGIN', 'The pipeline ended without a response: a middleware neither called next() nor ctx.respond().');

/**
 * Header fields Node keeps per request: one more than the largest
 * `max_headers_count` allowed, so that going over the configured limit is
 * seen (and refused) instead of silently truncated. Memory stays bounded by
 * `max_header_size`.
 */
const MAX_HEADERS_KEPT = 10_001;

/**
 * A 'close' listener for every response (one function per server, with
 * `this` the response): release the generation; when the response did not
 * finish, log a backend that broke off mid-response and cancel the upstream
 * request (the client went away); drain a small unread body; serve the next
 * request waiting on the connection.
 */
function responseCloseListener(warnings: RepeatedWarnings, serveNext: (next: WaitingRequest) => void): (this: TrackedResponse) => void {
  return function onResponseClose(this: TrackedResponse): void {
    const ctx = this[kContext];
    if (ctx !== undefined && !this.writableFinished) {
      const failure = ctx.exchange?.failure;
      if (failure !== undefined && failure.status >= 500) {
        const cause = failure.cause as { code?: string; message?: string } | undefined;
        // undici's code alone (UND_ERR_SOCKET) does not tell a close from a reset: its message does.
        const why = cause?.code !== undefined && cause.message !== undefined ? `${cause.code}: ${cause.message}` : (cause?.code ?? cause?.message);
        warnings.warn(
          failure.code,
          `${ctx.backend?.url}\0${why}`,
          { code: failure.code, backend: ctx.backend?.url, err: why },
          `backend ${ctx.backend?.url} broke off its response (${why ?? failure.code}): the client connection was cut`,
        );
      }
      ctx.discardUpstream();
    }
    ctx?.exchange?.responseClosed();
    this[kGeneration]!.leave();
    drainUnreadBody(this.req);
    const next = passTurn<WaitingRequest>(this.req.socket);
    if (next !== undefined) serveNext(next);
  };
}

/** The client of an Upgrade request went away before its answer was complete. */
function onUpgradeAnswerClose(this: TrackedResponse): void {
  if (!this.writableFinished) this[kContext]?.discardUpstream();
}

/** An Upgrade request answered without a tunnel: the connection ends with the answer. */
function endUpgradeAnswer(this: ServerResponse): void {
  const socket = this.socket;
  if (socket === null) return;
  this.detachSocket(socket);
  socket.destroySoon();
  setTimeout(destroyIfOpen, LINGER_MS, socket).unref();
}

function destroyIfOpen(socket: Socket): void {
  if (!socket.destroyed) socket.destroy();
}

function ignoreError(): void {}

/**
 * "Example.COM:8080" → "example.com"; "[::1]:80" → "[::1]". A trailing dot
 * goes too, as in nginx: "example.com." is the same name written fully
 * qualified, and must match the routes of "example.com".
 */
export function hostWithoutPort(host: string | undefined): string {
  if (host === undefined) return '';
  let end = host.length;
  if (host.charCodeAt(0) === 91 /* [ */) end = host.indexOf(']') + 1 || end;
  else {
    const colon = host.indexOf(':');
    if (colon !== -1) end = colon;
    if (end > 1 && host.charCodeAt(end - 1) === 46 /* . */) end--;
  }
  return host.slice(0, end).toLowerCase();
}

/** How often Node looks for connections past `headers_timeout` (its default, 30 s, would let slowloris sockets live that long). */
function connectionsCheckingInterval(headersTimeout: number): number {
  return Math.max(100, Math.min(1000, Math.floor(headersTimeout / 4)));
}

export class TrafficServer {
  readonly server: http.Server;
  readonly protocol: 'http' | 'https';
  generation: Generation;
  readonly #sockets = new Set<Socket>();
  readonly #onResponseClose: (this: TrackedResponse) => void;
  readonly #warnings: RepeatedWarnings;
  #clientLimit!: ClientConnectionLimit;
  /** The process's, shared with the listeners it had before (a rebind): this one adds to them. */
  readonly #clientCounts: ClientConnectionCounts;
  /**
   * A cluster primary accepts the connections and hands each to a worker
   * (SCHED_RR). Node's maxConnections must not refuse them then: a refused
   * connection goes back to the primary, which offers it to the next worker,
   * and while every worker is full it circles between them — a busy loop,
   * with the descriptors of the waiting connections held in the primary,
   * which runs the health checks. So a worker takes the connection and
   * closes it itself.
   */
  readonly #connectionsHandedOver: boolean;
  #closing = false;

  constructor(
    generation: Generation,
    logger: Logger,
    clientLimit: ClientConnectionLimit,
    clientCounts: ClientConnectionCounts,
    connectionsHandedOver = false,
  ) {
    this.#connectionsHandedOver = connectionsHandedOver;
    this.#clientCounts = clientCounts;
    this.generation = generation;
    this.#warnings = new RepeatedWarnings(logger);
    this.#onResponseClose = responseCloseListener(this.#warnings, this.#serveNext);
    const config = generation.config.server;
    const options = TrafficServer.serverOptions(config);
    this.protocol = config.tls ? 'https' : 'http';
    this.server = config.tls
      ? https.createServer(
          // Node's default (120 s) would let a client that never finishes its TLS handshake hold a connection that long.
          { ...options, handshakeTimeout: config.headersTimeout, ...readListenerCertificate(config.tls) },
          this.#onRequest,
        )
      : http.createServer(options, this.#onRequest);
    this.server.keepAliveTimeout = config.idleTimeout;
    this.server.maxHeadersCount = MAX_HEADERS_KEPT;
    this.limitClientConnections(clientLimit);
    this.server.on('drop', this.#onDrop);
    this.server.on('connection', (socket: Socket) => {
      if (this.#connectionsHandedOver && this.#sockets.size >= (this.#clientLimit.max ?? Infinity)) {
        socket.destroy();
        this.#onDrop();
        return;
      }
      this.#sockets.add(socket);
      this.#clientCounts.open++;
      socket.once('close', () => {
        this.#sockets.delete(socket);
        this.#clientCounts.open--;
      });
    });
    this.server.on('checkContinue', this.#onCheckContinue);
    this.server.on('clientError', this.#onClientError);
    this.server.on('upgrade', this.#onUpgrade);
    this.server.on('connect', this.#onConnect);
  }

  static serverOptions(config: ServerConfig): http.ServerOptions {
    return {
      maxHeaderSize: config.maxHeaderSize,
      headersTimeout: config.headersTimeout,
      keepAliveTimeout: config.idleTimeout,
      requestTimeout: 0,
      connectionsCheckingInterval: connectionsCheckingInterval(config.headersTimeout),
      // The guard checks Host itself, to answer with a body and close the connection.
      requireHostHeader: false,
      // Never the lenient parser, whatever NODE_OPTIONS says.
      insecureHTTPParser: false,
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

  /**
   * Stops accepting; resolves when every connection has closed. Idle
   * keep-alive connections are closed now, busy ones as soon as their
   * response is out (responses written from now on say `Connection: close`).
   */
  async close(): Promise<void> {
    this.#closing = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    const sweep = setInterval(() => this.server.closeIdleConnections(), 50);
    try {
      await closed;
    } finally {
      clearInterval(sweep);
      this.#warnings.flush();
    }
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

  /**
   * Applies to connections accepted from now on: lowered below what is
   * open, it refuses new ones until enough have closed, and cuts none.
   */
  limitClientConnections(limit: ClientConnectionLimit): void {
    this.#clientLimit = limit;
    // Node compares its count of open connections with it on every accept; Infinity never refuses.
    this.server.maxConnections = this.#connectionsHandedOver ? Infinity : (limit.max ?? Infinity);
  }

  /** A connection past the limit was closed (by Node, at maxConnections, or by the check for handed-over ones): one warning per window, repeats counted. */
  readonly #onDrop = (): void => {
    this.#clientCounts.refused++;
    const { max, source } = this.#clientLimit;
    this.#warnings.warn(
      'server.max_connections',
      '',
      { maxConnections: max },
      `a new client connection was closed unanswered: ${max} are open, the most this process accepts (${source}). ` +
        'Raise server.max_connections together with the open-files limit (ulimit -n, systemd LimitNOFILE: each proxied connection takes two descriptors), or add workers or instances',
    );
  };

  readonly #onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const socket = req.socket;
    // Pipelined behind a response that closes the connection: never served.
    if (isClosing(socket)) {
      req.resume();
      return;
    }
    if (!takeTurn(socket)) {
      waitTurn(socket, res);
      return;
    }
    this.#serveRequest(req, res);
  };

  /**
   * `Expect: 100-continue` (Node asks here instead of answering 100 itself):
   * the client is invited to send its body only once the request is
   * admitted, so a body over `max_body` gets its 413 without a 100 first.
   * (A final answer without a 100 makes Node close the connection: the
   * client may or may not send the body it held back.)
   */
  readonly #onCheckContinue = (req: IncomingMessage, res: ServerResponse): void => {
    (res as TrackedResponse)[kExpectsContinue] = true;
    this.#onRequest(req, res);
  };

  /** The response in flight on a connection closed: what waited behind it is served now. */
  readonly #serveNext = (next: WaitingRequest): void => {
    if (!(next instanceof WaitingHandover)) this.#serveRequest(next.req, next);
    else if (next.req.method === 'CONNECT') refuseConnect(next.req, next.req.socket);
    else this.#serveUpgradeRequest(next.req, next.req.socket, next.head);
  };

  #serveRequest(req: IncomingMessage, res: ServerResponse): void {
    const generation = this.generation;
    generation.enter();
    (res as TrackedResponse)[kGeneration] = generation;
    // `on`, not `once`: a response closes once, and once() would wrap the listener per request.
    res.on('close', this.#onResponseClose);
    const route = this.#admit(req, res, generation);
    if (route === undefined) return;
    if ((res as TrackedResponse)[kExpectsContinue] === true) res.writeContinue();
    void this.#serve((res as TrackedResponse)[kContext]!, route);
  }

  /**
   * Guard, target normalization, body limit, routing; on success the
   * request's ProxyContext is on `res` and its route is returned, else the
   * error answer is written and undefined returned.
   */
  #admit(req: IncomingMessage, res: ServerResponse, generation: Generation): RouteTarget | undefined {
    const config = generation.config.server;
    const refused = checkRequest(req, config.maxHeadersCount);
    if (refused !== undefined) {
      writeError(req, res, refused);
      return undefined;
    }
    let url = req.url!;
    let hostHeader = req.headers.host;
    if (url.charCodeAt(0) !== 47 /* / */) {
      const absolute = splitAbsoluteForm(url);
      if (absolute === undefined || !isValidHostHeader(absolute.authority)) {
        writeError(req, res, BAD_AUTHORITY);
        return undefined;
      }
      // RFC 9112 §3.2.2: the target's authority wins over Host — for routing and for the backend.
      url = absolute.target;
      hostHeader = absolute.authority;
      req.headers.host = hostHeader;
    }
    const target = normalizeTarget(url);
    if (target === undefined) {
      writeError(req, res, BAD_TARGET);
      return undefined;
    }
    const contentLength = req.headers['content-length'];
    if (contentLength !== undefined && Number(contentLength) > config.maxBody) {
      writeError(req, res, BODY_TOO_LARGE);
      return undefined;
    }
    const query = target.indexOf('?');
    const path = query === -1 ? target : target.slice(0, query);
    const host = hostWithoutPort(hostHeader);
    const route = generation.router.match(req.method!, host, path);
    if (route === undefined) {
      writeError(req, res, NO_ROUTE);
      return undefined;
    }
    const ctx = new ProxyContext(req, res, route.pool, host, target, this.protocol);
    (res as TrackedResponse)[kContext] = ctx;
    // A small Content-Length body stays `req` here and is read whole in #serve (whole-body.ts).
    if (ctx.body !== null && !isWholeBody(req)) ctx.body = new RequestBody(req, config.maxBody, config.bodyTimeout);
    stripRequestHopByHop(ctx.headers);
    ctx.clientIp = generation.forwarded.apply(ctx.headers, req.socket.remoteAddress ?? '', hostHeader, this.protocol);
    return route;
  }

  /** The pipeline threw: log what is worth logging, answer with the error. */
  #pipelineFailed(ctx: ProxyContext, route: RouteTarget, err: unknown): void {
    ctx.discardUpstream();
    const error = asLbError(err);
    if (error.code === 'LB_ERR_PLUGIN' || error.status >= 500) {
      const cause = error.cause as { code?: unknown; message?: unknown } | undefined;
      this.#warnings.warn(
        error.code,
        `${route.pool.name}\0${ctx.backend?.url}\0${cause?.code}\0${cause?.message}\0${error.message}`,
        { code: error.code, route: route.name, pool: route.pool.name, backend: ctx.backend?.url, err: error.cause ?? error.message },
        error.message,
      );
    }
    writeError(ctx.req, ctx.res, error);
  }

  async #serve(ctx: ProxyContext, route: RouteTarget): Promise<void> {
    const { req, res } = ctx;
    try {
      if (ctx.body === req) ctx.body = await readWholeBody(req, (res as TrackedResponse)[kGeneration]!.config.server.bodyTimeout);
      await route.handler(ctx);
    } catch (err) {
      this.#pipelineFailed(ctx, route, err);
      return;
    }
    // Destroyed: the client went away. Headers sent: answered already (a malformed body got its 400).
    if (res.destroyed || res.headersSent) {
      ctx.discardUpstream();
      return;
    }
    const response = ctx.response;
    if (response === undefined) {
      writeError(req, res, NO_RESPONSE);
      return;
    }
    if (hasUnreadBody(req)) settleUnreadBody(req, res);
    if (this.#closing) res.shouldKeepAlive = false;
    this.#writeResponse(ctx, route, response);
  }

  /** Writes the pipeline's answer: a plugin's or the core's own, or the backend's head and then its body, streamed. */
  #writeResponse(ctx: ProxyContext, route: RouteTarget, response: BackendResponse | LocalResponse): void {
    try {
      if (response instanceof LocalResponse) {
        writeLocalResponse(ctx.req, ctx.res, response);
        return;
      }
      // The backend broke off before anything was written: an honest 502 is still possible.
      const failure = response.exchange.failure;
      if (failure !== undefined) {
        this.#pipelineFailed(ctx, route, failure);
        return;
      }
      ctx.res.writeHead(response.status, response.headers);
    } catch (err) {
      // A plugin left a header Node refuses to write (CR, LF, a character
      // beyond U+00FF, an invalid name): that request fails, not the process.
      const message = `a plugin left a response header that cannot be written: ${(err as Error)?.message ?? String(err)}`;
      this.#pipelineFailed(ctx, route, new LbError('LB_ERR_PLUGIN', message, { cause: err }));
      return;
    }
    response.exchange.attach(ctx.res, (ctx.res as TrackedResponse)[kGeneration]!.config.server.sendTimeout);
  }

  /**
   * llhttp refused what arrived on `socket`. When it broke inside the body
   * of the request being served (a malformed chunk), that request gets the
   * 400 and its upstream request is cancelled; otherwise see answerParserError.
   */
  readonly #onClientError = (err: NodeJS.ErrnoException, socket: Socket): void => {
    // Node reports every later chunk on a failed parser again: the first answer stands.
    if (isClosing(socket)) return;
    const res = (socket as Socket & { _httpMessage?: TrackedResponse | null })._httpMessage;
    if (res != null && hasUnreadBody(res.req) && !res.headersSent && !res.destroyed) {
      res[kContext]?.discardUpstream();
      writeError(res.req, res, MALFORMED_BODY);
      // The parser refused the body (a bad chunk, or the client's FIN inside
      // it): Node forgets the request once that answer is out, and no event
      // will end its body, so whatever reads it would wait for body_timeout,
      // holding what it read (a retry's replay memory too). A socket error
      // (a reset) ends the body by itself, as the client going away.
      if (err.code?.startsWith('HPE_') === true) {
        failWholeBody(res.req, MALFORMED_BODY);
        RequestBody.fail(res.req, MALFORMED_BODY);
      }
      return;
    }
    answerParserError(err, socket);
  };

  /** Node hands Upgrade requests here (with the raw socket) instead of to 'request'. */
  readonly #onUpgrade = (req: IncomingMessage, socket: Socket, head: Buffer): void => {
    // Node removed its own listeners from the socket: an error must not go unhandled.
    socket.on('error', ignoreError);
    if (isClosing(socket)) {
      socket.destroy();
      return;
    }
    // Its turn ends with the connection: Node's parser is gone, nothing more is read as requests.
    if (!takeTurn(socket)) {
      waitTurn(socket, new WaitingHandover(req, head));
      return;
    }
    this.#serveUpgradeRequest(req, socket, head);
  };

  #serveUpgradeRequest(req: IncomingMessage, socket: Socket, head: Buffer): void {
    if (this.#closing) {
      socket.destroy();
      return;
    }
    const generation = this.generation;
    generation.enter();
    void this.#serveUpgrade(req, socket, head, generation).finally(() => generation.leave());
  }

  async #serveUpgrade(req: IncomingMessage, socket: Socket, head: Buffer, generation: Generation): Promise<void> {
    // Undefined (h2c only): forwarded as a plain request, answered, then the connection closes.
    const protocol = tunnelledProtocols(req.headers.upgrade as string);
    // A response object bound to the raw socket, for every answer that is not a 101.
    const res = new http.ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket);
    res.once('finish', endUpgradeAnswer);
    // Read when a refused upgrade's answer is streamed (its send_timeout); the generation is left by the caller.
    (res as TrackedResponse)[kGeneration] = generation;
    const route = this.#admit(req, res, generation);
    if (route === undefined) return;
    const ctx = (res as TrackedResponse)[kContext]!;
    if (ctx.body !== null) {
      ctx.body = null;
      writeError(req, res, UPGRADE_WITH_BODY);
      return;
    }
    ctx.upgrade = protocol;
    res.once('close', onUpgradeAnswerClose);
    watchHandshakeClient(socket);
    try {
      await route.handler(ctx);
    } catch (err) {
      stopWatchingHandshakeClient(socket);
      this.#pipelineFailed(ctx, route, err);
      return;
    }
    stopWatchingHandshakeClient(socket);
    const response = ctx.response;
    if (response === undefined) {
      writeError(req, res, NO_RESPONSE);
      return;
    }
    if (socket.destroyed) {
      ctx.discardUpstream();
      return;
    }
    if (response instanceof BackendResponse && response.exchange instanceof UpgradeExchange && response.exchange.upgraded) {
      this.#startTunnel(ctx, response, response.exchange, socket, head, res);
      return;
    }
    this.#writeResponse(ctx, route, response);
  }

  #startTunnel(
    ctx: ProxyContext,
    response: BackendResponse,
    exchange: UpgradeExchange,
    socket: Socket,
    head: Buffer,
    res: ServerResponse,
  ): void {
    const upstream = exchange.takeSocket();
    ctx.exchange = undefined;
    if (response.status !== 101) {
      // A plugin turned the switch into another answer: the backend connection cannot be used.
      upstream.destroy();
      res.writeHead(response.status, response.headers);
      res.end();
      return;
    }
    let responseHead: string;
    try {
      responseHead = switchingProtocolsHead(response.status, response.headers);
    } catch (err) {
      upstream.destroy();
      writeError(ctx.req, res, asLbError(err));
      return;
    }
    res.removeListener('finish', endUpgradeAnswer);
    res.detachSocket(socket);
    socket.write(responseHead);
    openTunnel(socket, upstream, head, exchange.backend, this.generation.config.server.idleTimeout);
  }

  /** CONNECT asks for a forward proxy, which Switchyard is not: refused in its turn (its answer ends the connection). */
  readonly #onConnect = (req: IncomingMessage, socket: Socket, head: Buffer): void => {
    socket.on('error', ignoreError);
    if (!takeTurn(socket)) {
      waitTurn(socket, new WaitingHandover(req, head));
      return;
    }
    refuseConnect(req, socket);
  };
}

function refuseConnect(req: IncomingMessage, socket: Socket): void {
  const res = new http.ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket);
  res.once('finish', endUpgradeAnswer);
  closeAfterResponse(req, res);
  writeError(req, res, CONNECT_REFUSED);
}

function writeLocalResponse(req: IncomingMessage, res: ServerResponse, response: LocalResponse): void {
  const body = response.body;
  if (body !== undefined && response.headers['content-length'] === undefined) {
    response.headers['content-length'] = String(Buffer.byteLength(body));
  }
  res.writeHead(response.status, response.headers);
  res.end(req.method === 'HEAD' ? undefined : body);
}
