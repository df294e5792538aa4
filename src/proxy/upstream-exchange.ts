/**
 * One attempt of a request at one backend, driven by the backend client's
 * handler interface (src/client/exchange-handler.ts: no stream objects, no
 * header work we do not need), or undici's for an Upgrade request.
 *
 * The response head becomes ctx.response and settles `head`, so the pipeline
 * can unwind and plugins can see (and change) it before anything is written. Body chunks that arrive
 * before the head is written are held (a bounded amount; past that the
 * socket is paused), then streamed with backpressure: when the client is
 * slow, the backend socket is paused, so no response is ever buffered whole.
 *
 * A client that stops reading would hold the response — and its backend
 * connection — for good: the backend client does not time out a body it
 * was asked to pause, and nothing else watches a response being written. So a client
 * that fell behind (a write had to be buffered) and has not caught up
 * within `send_timeout` (the `stallMs` of attach()) gets its connection
 * cut, as by HAProxy's `timeout client` or nginx's `send_timeout`. A slow
 * client that keeps reading catches up between pauses; but Node sees its
 * progress only when the kernel reports the socket writable again (a part
 * of its send buffer freed), so one slower than that amount per
 * `send_timeout` is cut as well — as it would be by nginx.
 */
import type { ServerResponse } from 'node:http';
import type { BackendHandler } from '../client/backend-client.js';
import type { BackendRequestOptions, ExchangeHandler, RequestControl } from '../client/exchange-handler.js';
import { LbError } from '../errors.js';
import type { Backend } from '../pool/backend.js';
import { BackendResponse, type ProxyContext } from '../pipeline/context.js';
import { failedOnUsedSocket } from './backend-socket.js';
import { responseHeaders } from './hop-by-hop.js';
import { latin1 } from './latin1.js';
import { batchWithTurn, type TurnEndTask } from './turn-end.js';
import { isLocalFault, upstreamError } from './upstream-errors.js';

/** Body bytes held before the response head is written; past this the backend socket is paused. */
const HOLD_LIMIT = 64 * 1024;

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/**
 * Sends of one request on further reused sockets after each failed as stale.
 * A backend that closes idle connections can close several at once, and the
 * pool may hand out another of them; every failure destroys the socket it
 * used, so the pool soon runs out of stale ones.
 */
const MAX_STALE_RESENDS = 3;

/**
 * A complete body up to this size is written as a latin1 string: Node then
 * appends it to the response head and sends both with one plain write,
 * where a Buffer body takes the writev path (an array of two chunks, a
 * write request object, the head converted separately). Latin1 maps each
 * byte to one character and back, so the bytes on the wire are the same.
 */
const SMALL_BODY_AS_TEXT = 4096;

/** undici's raw header pairs as text. */
export function latin1Pairs(raw: readonly Buffer[]): string[] {
  const pairs = new Array<string>(raw.length);
  for (let i = 0; i < raw.length; i++) pairs[i] = latin1(raw[i]!);
  return pairs;
}

function latin1Text(chunks: Buffer[]): string {
  if (chunks.length === 1) return latin1(chunks[0]!);
  let text = '';
  for (let i = 0; i < chunks.length; i++) text += latin1(chunks[i]!);
  return text;
}

/** Longest wait for written bytes to reach a client before a cut connection is destroyed anyway. */
const CUT_FLUSH_MS = 2000;
const NOTHING = Buffer.alloc(0);

/**
 * The backend failed after the response head was taken: the client must see
 * the response break off, never a clean short one. What was written is let
 * through first (destroying at once would drop it), then the connection is
 * reset — a plain close would make a close-delimited body look complete.
 */
function cutResponse(res: ServerResponse): void {
  const socket = res.socket;
  if (socket === null || socket.destroyed) {
    res.destroy();
    return;
  }
  socket.write(NOTHING, () => socket.resetAndDestroy());
  setTimeout(() => socket.destroyed || socket.destroy(), CUT_FLUSH_MS).unref();
}

function cutStalledClient(exchange: UpstreamExchange): void {
  exchange.checkStall();
}

/**
 * undici's way of acting on a request (Upgrade requests, or every request
 * when Node's parser is missing: src/client/backend-client.ts), behind the
 * control the backend client hands over.
 */
class UndiciControl implements RequestControl {
  resumeUndici: (() => void) | undefined;

  constructor(private readonly abortUndici: (err?: Error) => void) {}

  abort(_handler: ExchangeHandler, err: Error): void {
    this.abortUndici(err);
  }

  resume(): void {
    this.resumeUndici?.();
  }
}

/** Called with every failed exchange, for passive health detection. */
export type FailureListener = (exchange: UpstreamExchange, err: LbError) => void;

export class UpstreamExchange implements BackendHandler, TurnEndTask {
  /** Settles when the response head is in (and is ctx.response) or the attempt failed. */
  readonly head: Promise<void>;
  #resolve!: () => void;
  #reject!: (err: LbError) => void;
  /** How to abort or resume the request, once it is on a connection. */
  #control: RequestControl | undefined;
  #res: ServerResponse | undefined;
  #held: Buffer[] | undefined;
  #heldBytes = 0;
  #paused = false;
  #headReceived = false;
  #ended = false;
  #error: LbError | undefined;
  #settled = false;
  #cancelled = false;
  #staleResends = 0;
  /** A 204 or 304: no body, whatever Content-Length says. */
  #bodyless = false;
  /** performance.now() at start(), for the backend's duration histogram. */
  #startedAt = 0;
  /** Bound on first backpressure only: most responses never need it. */
  #drainListener: (() => void) | undefined;
  /** How long the client may leave written bytes unread (see the top of this file); 0: no limit. */
  #stallMs = 0;
  /** Created on first backpressure, re-armed (refresh) at each later one. */
  #stallTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly ctx: ProxyContext,
    readonly backend: Backend,
    private readonly options: BackendRequestOptions,
    private readonly onFailure: FailureListener,
  ) {
    this.head = new Promise<void>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  start(): void {
    this.#startedAt = performance.now();
    this.backend.active++;
    this.backend.requests++;
    this.backend.client.dispatch(this.options, this);
  }

  onExchangeStart(control: RequestControl): void {
    this.#control = control;
    if (this.#cancelled) control.abort(this, new Error('request cancelled by the proxy'));
  }

  onExchangeHead(statusCode: number, rawHeaders: string[]): void {
    this.#headReceived = true;
    this.backend.passiveFailures = 0;
    this.backend.responses[Math.min(4, Math.floor(statusCode / 100) - 1)]!++;
    const headers = responseHeaders(rawHeaders);
    if (statusCode === 204 || statusCode === 304) {
      this.#bodyless = true;
      // RFC 9110 §8.6: never on a 204 (a 304's Content-Length describes the representation and stays).
      if (statusCode === 204 && headers['content-length'] !== undefined) delete headers['content-length'];
    }
    this.#settleHead(new BackendResponse(statusCode, headers, this));
  }

  onExchangeData(chunk: Buffer): boolean {
    const res = this.#res;
    if (res !== undefined) {
      if (res.write(chunk)) return true;
      this.#paused = true;
      this.#watchStall();
      res.once('drain', this.#drainHandler());
      return false;
    }
    if (this.#cancelled) return true;
    (this.#held ??= []).push(chunk);
    this.#heldBytes += chunk.length;
    if (this.#heldBytes < HOLD_LIMIT) return true;
    this.#paused = true;
    return false;
  }

  onExchangeEnd(): void {
    this.#settle();
    this.#ended = true;
    // The stall timer stays: a client that does not read the end of the response is cut as well.
    this.#res?.end();
  }

  onExchangeError(err: Error): void {
    if (!this.#headReceived) {
      // Cancelled (the client went away, or a plugin moved on): the abort's
      // own error (undici's: a socket error) must not read as the backend's fault.
      const mapped = this.#cancelled ? new LbError('LB_ERR_CLIENT_GONE') : upstreamError(err, this.backend.url);
      if (!this.#cancelled && this.#mayResendAsStale(err, mapped)) {
        // The backend closed a pooled keep-alive socket as we reused it: it
        // most likely never saw the request, and the method says a second
        // one is harmless anyway. The retry plugin's attempts stay untouched.
        this.#staleResends++;
        this.#control = undefined;
        this.backend.client.dispatch(this.options, this);
        return;
      }
      this.#settle();
      // Below 500 the request failed on the client's side (body over max_body,
      // stalled, client gone); a local fault is this process's (a plugin made
      // it unsendable, a connection could not be opened for lack of resources).
      if (!this.#cancelled && mapped.status >= 500 && !isLocalFault(mapped)) {
        this.backend.failures++;
        this.onFailure(this, mapped);
      }
      this.#reject(mapped);
      return;
    }
    this.#settle();
    if (this.#cancelled) return;
    const mapped = upstreamError(err, this.backend.url);
    if (mapped.status >= 500 && !isLocalFault(mapped)) {
      this.backend.failures++;
      this.onFailure(this, mapped);
    }
    this.#error = mapped;
    // The head is out (or about to be): the only honest signal left is to cut the client connection.
    if (this.#res !== undefined) cutResponse(this.#res);
  }

  // ---- undici's handler interface (Upgrade requests; see UndiciControl) ----

  onConnect(abort: (err?: Error) => void): void {
    this.onExchangeStart(new UndiciControl(abort));
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    // 1xx interim responses are not relayed; Node answers Expect: 100-continue itself.
    if (statusCode < 200) return true;
    (this.#control as UndiciControl | undefined)!.resumeUndici = resume;
    this.onExchangeHead(statusCode, latin1Pairs(rawHeaders));
    return true;
  }

  onData(chunk: Buffer): boolean {
    return this.onExchangeData(chunk);
  }

  onComplete(): void {
    this.onExchangeEnd();
  }

  onError(err: Error): void {
    // undici 7 checks a 204's or 304's Content-Length against the 0 body
    // bytes it read and fails a valid response: it was complete at its head.
    if (this.#bodyless && (err as { code?: string }).code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH') this.onExchangeEnd();
    else this.onExchangeError(err);
  }

  /** Why the response broke off after its head was received (the server logs it when the client connection is cut). */
  get failure(): LbError | undefined {
    return this.#error;
  }

  /**
   * For a subclass whose request took the connection over (Upgrade: the
   * backend answered 101 and undici handed its socket over): ends this
   * exchange with `head` as its response.
   */
  protected settleWith(head: BackendResponse): void {
    this.#headReceived = true;
    this.backend.passiveFailures = 0;
    this.backend.responses[0]!++;
    this.#settle();
    this.#settleHead(head);
  }

  /**
   * Starts streaming to the client once the head has been written. A client
   * that leaves what was written to it unread for `stallMs` is cut (0: never).
   */
  attach(res: ServerResponse, stallMs: number): void {
    this.#res = res;
    this.#stallMs = stallMs;
    if (this.#error === undefined && this.#ended) {
      // The whole body is in: one end() writes head and body together, with the rest of this turn's writes.
      batchWithTurn(this);
      return;
    }
    const held = this.#held;
    this.#held = undefined;
    let writable = true;
    if (held !== undefined) for (let i = 0; i < held.length; i++) writable = res.write(held[i]!);
    if (!writable) this.#watchStall();
    if (this.#error !== undefined) cutResponse(res);
    else if (this.#paused) {
      if (writable) this.#onDrain();
      else res.once('drain', this.#drainHandler());
    }
  }

  /** Writes the whole response that attach() held to the turn's end (src/proxy/turn-end.ts). */
  atTurnEnd(): void {
    const res = this.#res!;
    const held = this.#held;
    this.#held = undefined;
    // Cancelled since (the client went away): a clean short response must not stand in for the real one.
    if (this.#cancelled) res.destroy();
    else if (held === undefined) res.end();
    else if (this.#heldBytes <= SMALL_BODY_AS_TEXT) res.end(latin1Text(held), 'latin1');
    else res.end(held.length === 1 ? held[0] : Buffer.concat(held, this.#heldBytes));
  }

  /** The client just fell behind (a write was buffered over the limit): it has `stallMs` to catch up. */
  #watchStall(): void {
    if (this.#stallMs <= 0) return;
    if (this.#stallTimer === undefined) {
      this.#stallTimer = setTimeout(cutStalledClient, this.#stallMs, this);
      this.#stallTimer.unref();
    } else this.#stallTimer.refresh();
  }

  /**
   * The stall timer fired: cut the client when it has not drained what was
   * waiting since it last fell behind (its connection closing cancels this
   * exchange). The socket's flag, not the response's: a response whose
   * backend is done (ended) can still be stuck unread in the socket.
   */
  checkStall(): void {
    const socket = this.#res?.socket;
    if (socket != null && socket.writableNeedDrain && !socket.destroyed) socket.destroy();
  }

  /** The response closed (complete or not): nothing is left to watch. */
  responseClosed(): void {
    clearTimeout(this.#stallTimer);
  }

  /** Abandons this attempt (retry, plugin answered, client gone). */
  cancel(): void {
    this.#cancelled = true;
    this.#held = undefined;
    clearTimeout(this.#stallTimer);
    if (this.#settled) return;
    this.#control?.abort(this, new Error('request cancelled by the proxy'));
  }

  /**
   * The response head is the request's response from now on: set here, in
   * undici's callback, so that the terminal step can return `head` as it is
   * instead of awaiting it in one more async frame. A cancelled attempt's
   * head is dropped: whoever cancelled it owns ctx.response.
   */
  #settleHead(response: BackendResponse): void {
    if (!this.#cancelled) this.ctx.response = response;
    this.#resolve();
  }

  #onDrain(): void {
    this.#paused = false;
    this.#control?.resume(this);
  }

  #drainHandler(): () => void {
    return (this.#drainListener ??= () => this.#onDrain());
  }

  #settle(): void {
    if (this.#settled) return;
    this.#settled = true;
    this.backend.active--;
    this.backend.observeDuration(performance.now() - this.#startedAt);
  }

  /**
   * Only a socket that had read bytes before it failed can be stale: a
   * connection opened for this request and broken before a byte came back
   * is the backend's answer to it, and only the retry plugin may send it
   * again (Go's http.Transport draws the same line at reused connections).
   */
  #mayResendAsStale(err: Error, mapped: LbError): boolean {
    return (
      failedOnUsedSocket(err) &&
      this.#staleResends < MAX_STALE_RESENDS &&
      mapped.code === 'LB_ERR_UPSTREAM_RESET' &&
      IDEMPOTENT.has(this.ctx.method) &&
      (this.options.body === null || this.options.body === undefined || Buffer.isBuffer(this.options.body))
    );
  }
}
