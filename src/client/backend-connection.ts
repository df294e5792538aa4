/**
 * One keep-alive connection to a backend, carrying one request at a time
 * (no pipelining: a response that arrives before its request was sent is
 * a protocol error, never the next request's answer).
 *
 * Per request it costs one head string, one write (two with a Buffer
 * body; held corked to the end of the event loop's turn while other
 * requests are in flight, see src/proxy/turn-end.ts) and the parser's
 * callbacks; the listeners, the parser and the
 * timer belong to the connection and are made once. The timer times the
 * request phase: from the write to the response head (`headersTimeout`;
 * a streamed request body restarts it with each piece sent, so a long
 * upload that keeps moving is not cut), then each gap between response
 * body bytes (`bodyTimeout`), except while the handler has paused the body
 * for a slow client. Idle connections are timed
 * by their client (backend-client.ts), which checks their age when it takes
 * one: no timer is re-armed when a request ends.
 *
 * Failures reach the handler as the errors undici would give
 * (client-errors.ts); a socket error arrives after backend-socket.ts marked
 * whether the connection had carried a response before, which is what lets
 * a request on a connection the backend had just closed be sent again.
 */
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { backendRequestEnded, backendRequestStarted, batchWithTurn, type TurnEndTask } from '../proxy/turn-end.js';
import { bodyTimeout, headersTimeout, requestAborted, requestLengthMismatch, socketError } from './client-errors.js';
import type { BackendRequestOptions, ExchangeHandler, RequestControl } from './exchange-handler.js';
import { CHUNKED, declaredLength, NO_BODY, requestHead } from './request-head.js';
import type { NativeParser, ParserClass } from './response-parser.js';

/** What the connection tells the client that owns it. */
export interface ConnectionOwner {
  /** The request is over and the connection may carry another. */
  connectionIdle(connection: BackendConnection): void;
  /** The socket closed: the connection is gone. */
  connectionClosed(connection: BackendConnection): void;
}

const IDLE = 0;
/** Assigned, head not yet written (the handler may still abort it for free). */
const STARTING = 1;
const AWAITING_HEAD = 2;
const READING_BODY = 3;

/** Never read: async_hooks' resource for the parser (node:http passes an object of its own). */
const PARSER_RESOURCE = { type: 'SWITCHYARD_BACKEND_RESPONSE' };

/** The parser's callbacks run with the parser as `this`; it points back at its connection. */
interface ConnectionParser extends NativeParser {
  connection: BackendConnection;
}

function onHeadersPart(this: ConnectionParser, headers: string[]): void {
  this.connection.headersPart(headers);
}

function onHeadersComplete(
  this: ConnectionParser,
  _major: number,
  _minor: number,
  headers: string[] | undefined,
  _method: unknown,
  _url: unknown,
  statusCode: number,
  _statusMessage: unknown,
  upgrade: boolean,
  shouldKeepAlive: boolean,
): number {
  return this.connection.responseStart(headers, statusCode, upgrade, shouldKeepAlive);
}

function onBody(this: ConnectionParser, chunk: Buffer): void {
  this.connection.responseData(chunk);
}

function onMessageComplete(this: ConnectionParser): void {
  this.connection.responseEnd();
}

function ignoreError(): void {}

function onTimeout(connection: BackendConnection): void {
  connection.timedOut();
}

const CRLF = '\r\n';
const LAST_CHUNK = '0\r\n\r\n';
const TIMEOUT_IN_KEEP_ALIVE = /timeout=(\d+)/i;

export class BackendConnection implements RequestControl, TurnEndTask {
  readonly #owner: ConnectionOwner;
  readonly socket: Socket;
  readonly #parser: ConnectionParser;
  /** The Host sent when the request has none: the backend's own. */
  readonly #host: string;
  readonly #defaultKeepAliveMs: number;
  readonly #maxKeepAliveMs: number;
  #handler: ExchangeHandler | undefined;
  #options: BackendRequestOptions | undefined;
  #phase = IDLE;
  /** Header pairs the parser handed over before the head was complete (long or split heads). */
  #headerParts: string[] | undefined;
  #isHead = false;
  #paused = false;
  /** The backend will keep the connection open after this response. */
  #keepAlive = true;
  /** Every byte of the request (body included) was handed to the socket. */
  #requestSent = true;
  /** The response ended inside the parser's callbacks; released once the parser returns. */
  #responseEnded = false;
  /** Something arrived that answers no request: the connection is closed once the parser returns. */
  #violation: Error | undefined;
  #timer: NodeJS.Timeout | undefined;
  #timerMs = 0;
  /** A streamed request body being written, and how many bytes it may still send (CHUNKED: no count). */
  #body: Readable | undefined;
  /**
   * The head of a request whose streamed body has not sent a byte yet: it
   * goes out with the first one (or the end), so a body the client's parser
   * refuses before that reaches no backend, as with undici.
   */
  #unsentHead: string | undefined;
  #bodyRemaining = 0;
  /** The last Keep-Alive header seen, so a backend sending the same one each time is parsed once. */
  #keepAliveHeader: string | undefined;
  /** How long this connection may sit idle: the client's default, or less when the backend says so. */
  keepAliveMs: number;
  /** performance.now() when it last became idle (set by the client). */
  idleSince = 0;

  constructor(owner: ConnectionOwner, socket: Socket, Parser: ParserClass, host: string, keepAliveMs: number, maxKeepAliveMs: number) {
    this.#owner = owner;
    this.socket = socket;
    this.#host = host;
    this.#defaultKeepAliveMs = keepAliveMs;
    this.#maxKeepAliveMs = maxKeepAliveMs;
    this.keepAliveMs = keepAliveMs;
    const parser = new Parser() as ConnectionParser;
    parser.initialize(Parser.RESPONSE, PARSER_RESOURCE, 0, Parser.kLenientNone);
    parser[Parser.kOnHeaders] = onHeadersPart;
    parser[Parser.kOnHeadersComplete] = onHeadersComplete;
    parser[Parser.kOnBody] = onBody;
    parser[Parser.kOnMessageComplete] = onMessageComplete;
    parser.connection = this;
    this.#parser = parser;
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
    socket.on('drain', this.#onDrain);
  }

  /** Sends a request on this (idle) connection. */
  start(handler: ExchangeHandler, options: BackendRequestOptions): void {
    this.#handler = handler;
    this.#options = options;
    this.#phase = STARTING;
    handler.onExchangeStart(this);
    // Cancelled while it waited for a connection: abort() has ended it.
    if (this.#handler !== handler) return;
    const body = options.body;
    let head: string;
    let framing: number;
    try {
      framing = body === null ? NO_BODY : Buffer.isBuffer(body) ? body.length : declaredLength(options.headers);
      head = requestHead(options.method, options.path, options.headers, framing, this.#host);
    } catch (err) {
      // Nothing was written: the connection stays good for the next request.
      this.#endRequest();
      this.#owner.connectionIdle(this);
      handler.onExchangeError(err as Error);
      return;
    }
    this.#phase = AWAITING_HEAD;
    this.#isHead = options.method === 'HEAD';
    this.#keepAlive = true;
    this.#headerParts = undefined;
    this.#armTimer(options.headersTimeout);
    const socket = this.socket;
    if (body === null) {
      this.#requestSent = true;
      socket.cork();
      socket.write(head, 'latin1');
      batchWithTurn(this);
    } else if (Buffer.isBuffer(body)) {
      this.#requestSent = true;
      socket.cork();
      socket.write(head, 'latin1');
      if (body.length > 0) socket.write(body);
      batchWithTurn(this);
    } else {
      this.#requestSent = false;
      this.#unsentHead = head;
      this.#sendBody(body, framing);
    }
    // Counted after its own write was batched: what is counted is the other requests a write could share its turn with.
    backendRequestStarted();
  }

  /** The request start() wrote leaves with the rest of this turn's writes (src/proxy/turn-end.ts). */
  atTurnEnd(): void {
    this.socket.uncork();
  }

  abort(handler: ExchangeHandler, err: Error): void {
    if (handler !== this.#handler) return;
    if (this.#phase === STARTING) {
      // Aborted from onExchangeStart: nothing was written, the connection is as good as before.
      this.#endRequest();
      this.#owner.connectionIdle(this);
      handler.onExchangeError(err);
      return;
    }
    this.#fail(err);
  }

  resume(handler: ExchangeHandler): void {
    if (handler !== this.#handler || !this.#paused) return;
    this.#paused = false;
    this.#timer?.refresh();
    this.socket.resume();
  }

  /** Fails the request in flight, if any, with `err` and closes the connection. */
  destroy(err: Error): void {
    this.#fail(err);
    this.socket.destroy();
  }

  // ---- the parser's callbacks (see the functions at the top) ----

  headersPart(headers: string[]): void {
    if (this.#headerParts === undefined) this.#headerParts = headers;
    else for (let i = 0; i < headers.length; i++) this.#headerParts.push(headers[i]!);
  }

  /** Returns what llhttp expects of on_headers_complete: 0 read the body, 1 skip it, 2 stop (upgrade). */
  responseStart(headers: string[] | undefined, statusCode: number, upgrade: boolean, shouldKeepAlive: boolean): number {
    if (headers === undefined) {
      headers = this.#headerParts ?? [];
      this.#headerParts = undefined;
    }
    const handler = this.#handler;
    if (handler === undefined || this.#phase !== AWAITING_HEAD || this.#unsentHead !== undefined) {
      // A response to no request (or a second one to this request).
      this.#violation ??= socketError('bad response');
      return 2;
    }
    if (upgrade || statusCode === 101) {
      // Switching protocols on a request that asked for no upgrade (Upgrade requests go through undici).
      this.#violation ??= socketError('bad upgrade');
      return 2;
    }
    // 1xx interim responses: the final response follows on the same connection.
    if (statusCode < 200) return 1;
    this.#phase = READING_BODY;
    this.#keepAlive = shouldKeepAlive;
    if (shouldKeepAlive) this.#readKeepAlive(headers);
    this.#armTimer(this.#options!.bodyTimeout);
    handler.onExchangeHead(statusCode, headers);
    return this.#isHead || statusCode === 204 || statusCode === 304 ? 1 : 0;
  }

  responseData(chunk: Buffer): void {
    const handler = this.#handler;
    if (handler === undefined || this.#phase !== READING_BODY) return;
    if (!handler.onExchangeData(chunk) && !this.#paused) {
      this.#paused = true;
      this.socket.pause();
    }
  }

  responseEnd(): void {
    // A 1xx interim response ends too; only the final one counts.
    if (this.#phase !== READING_BODY) return;
    const handler = this.#handler!;
    this.#endRequest();
    this.#responseEnded = true;
    handler.onExchangeEnd();
  }

  timedOut(): void {
    if (this.#phase === AWAITING_HEAD) this.#fail(headersTimeout());
    else if (this.#phase === READING_BODY && !this.#paused) this.#fail(bodyTimeout());
  }

  // ---- socket events ----

  readonly #onData = (chunk: Buffer): void => {
    if (this.#phase === IDLE) {
      // Bytes nobody asked for on an idle connection: whatever they are, they cannot be trusted to frame the next response.
      this.socket.destroy();
      return;
    }
    const parsed = this.#parser.execute(chunk);
    if (typeof parsed !== 'number') {
      // As node:http words it: llhttp's reason says what was wrong (the code alone is shared by several).
      const reason = (parsed as Error & { reason?: unknown }).reason;
      if (typeof reason === 'string') parsed.message = `Parse Error: ${reason}`;
      this.#fail(parsed);
      return;
    }
    if (this.#violation !== undefined) {
      this.#fail(this.#violation);
      return;
    }
    if (this.#responseEnded) this.#afterResponse();
    else if (this.#phase === READING_BODY && !this.#paused) this.#timer?.refresh();
  };

  readonly #onEnd = (): void => {
    if (this.#phase === READING_BODY) {
      // The end of a close-delimited body completes it; any other end is a cut.
      const error = this.#parser.finish();
      if (error === undefined && this.#responseEnded) {
        this.#afterResponse();
        return;
      }
    }
    if (this.#phase !== IDLE) this.socket.destroy(socketError('other side closed'));
    else this.socket.destroy();
  };

  readonly #onError = (err: Error): void => {
    this.#fail(err);
  };

  readonly #onClose = (): void => {
    this.#fail(socketError('other side closed'));
    this.#stopTimer();
    this.#owner.connectionClosed(this);
    // Not from inside the parser: 'close' comes on a later tick than any execute().
    this.#parser.close();
  };

  readonly #onDrain = (): void => {
    this.#body?.resume();
  };

  // ---- the request body ----

  #sendBody(body: Readable, framing: number): void {
    this.#body = body;
    this.#bodyRemaining = framing;
    body.on('data', this.#onBodyData);
    body.on('end', this.#onBodyEnd);
    body.on('error', this.#onBodyError);
    body.on('close', this.#onBodyClose);
  }

  readonly #onBodyData = (chunk: Buffer): void => {
    if (chunk.length === 0) return;
    // A body still going out is progress: the wait for the head counts from its last byte.
    if (this.#phase === AWAITING_HEAD) this.#timer?.refresh();
    const socket = this.socket;
    let writable: boolean;
    socket.cork();
    this.#writeUnsentHead();
    if (this.#bodyRemaining === CHUNKED) {
      socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
      socket.write(chunk);
      writable = socket.write(CRLF, 'latin1');
    } else {
      this.#bodyRemaining -= chunk.length;
      if (this.#bodyRemaining < 0) {
        socket.uncork();
        this.#fail(requestLengthMismatch());
        return;
      }
      writable = socket.write(chunk);
    }
    socket.uncork();
    if (!writable) this.#body?.pause();
  };

  readonly #onBodyEnd = (): void => {
    if (this.#bodyRemaining > 0) {
      this.#fail(requestLengthMismatch());
      return;
    }
    this.socket.cork();
    this.#writeUnsentHead();
    if (this.#bodyRemaining === CHUNKED) this.socket.write(LAST_CHUNK, 'latin1');
    this.socket.uncork();
    this.#detachBody(undefined);
    this.#requestSent = true;
  };

  readonly #onBodyError = (err: Error): void => {
    this.#fail(err);
  };

  readonly #onBodyClose = (): void => {
    // Closed without 'end' or 'error': the client that sent it went away.
    if (this.#body !== undefined) this.#fail(requestAborted());
  };

  #writeUnsentHead(): void {
    if (this.#unsentHead === undefined) return;
    this.socket.write(this.#unsentHead, 'latin1');
    this.#unsentHead = undefined;
  }

  /** Stops sending the body; `err` set: the request failed, and the body is destroyed with it (as undici does). */
  #detachBody(err: Error | undefined): void {
    const body = this.#body;
    if (body === undefined) return;
    this.#body = undefined;
    this.#unsentHead = undefined;
    body.off('data', this.#onBodyData);
    body.off('end', this.#onBodyEnd);
    body.off('close', this.#onBodyClose);
    body.off('error', this.#onBodyError);
    // Destroying reports `err` on a later tick, when this connection may carry another request.
    body.on('error', ignoreError);
    if (!body.destroyed && !body.readableEnded) body.destroy(err);
  }

  // ---- the request's end ----

  /** A response ended (inside the parser's callbacks): reuse the connection, or close it. */
  #afterResponse(): void {
    this.#responseEnded = false;
    if (this.#keepAlive && this.#requestSent && !this.socket.destroyed) {
      this.#owner.connectionIdle(this);
    } else {
      // The backend closes it, or the request body was still being sent: the connection cannot carry another request.
      this.#detachBody(undefined);
      this.socket.destroy();
    }
  }

  #endRequest(): void {
    if (this.#phase >= AWAITING_HEAD) backendRequestEnded();
    this.#handler = undefined;
    this.#options = undefined;
    this.#phase = IDLE;
    if (this.#paused) {
      // Paused on the response's last bytes: the connection must read again for the next one.
      this.#paused = false;
      this.socket.resume();
    }
  }

  /** Ends the request in flight with `err` (if one is) and closes the connection. */
  #fail(err: Error): void {
    const handler = this.#handler;
    this.#responseEnded = false;
    this.#detachBody(err);
    this.#endRequest();
    if (!this.socket.destroyed) this.socket.destroy();
    handler?.onExchangeError(err);
  }

  #armTimer(ms: number): void {
    if (ms <= 0) {
      this.#stopTimer();
      return;
    }
    if (this.#timer !== undefined && this.#timerMs === ms) {
      this.#timer.refresh();
      return;
    }
    this.#stopTimer();
    this.#timerMs = ms;
    this.#timer = setTimeout(onTimeout, ms, this);
    this.#timer.unref();
  }

  #stopTimer(): void {
    if (this.#timer === undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerMs = 0;
  }

  /** A backend's `Keep-Alive: timeout=N` shortens how long the connection is kept idle (to N − 1 s, as undici does). */
  #readKeepAlive(headers: string[]): void {
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      if (name.length !== 10 || name.toLowerCase() !== 'keep-alive') continue;
      const value = headers[i + 1]!;
      if (value === this.#keepAliveHeader) return;
      this.#keepAliveHeader = value;
      const match = TIMEOUT_IN_KEEP_ALIVE.exec(value);
      this.keepAliveMs =
        match === null ? this.#defaultKeepAliveMs : Math.max(0, Math.min(this.#maxKeepAliveMs, Number(match[1]) * 1000 - 1000));
      return;
    }
  }
}
