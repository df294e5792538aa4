/**
 * The request body as it goes upstream, for requests that have one (a
 * request without a body gets no wrapper at all). It does three things the
 * bare IncomingMessage cannot:
 *
 * - counts bytes and fails with 413 at `max_body`, which is how a chunked
 *   body (no Content-Length to check up front) is cut mid-stream; the error
 *   aborts the upstream request;
 * - fails with 408 when the client pauses longer than `body_timeout` while
 *   the body is wanted (time spent paused because the backend reads slowly
 *   does not count);
 * - keeps the backend client away from the IncomingMessage: when it is done
 *   with a body it has not sent whole (the request failed, or the response
 *   came first) it destroys it, as undici does, and a destroyed IncomingMessage stops the socket
 *   reading, leaving a keep-alive connection stuck behind an unread body.
 *   Here only this wrapper is destroyed; what happens to the rest of the
 *   client's body is decided by the server (see unread-body.ts).
 *
 * The client's stream is not read until the body is first wanted.
 */
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { LbError } from '../errors.js';

const kBody = Symbol('switchyard.requestBody');
const kHasBody = Symbol('switchyard.hasBody');

type Source = IncomingMessage & { [kBody]?: RequestBody; [kHasBody]?: true };

const TOO_LARGE = new LbError('LB_ERR_BODY_TOO_LARGE');

export class RequestBody extends Readable {
  /** Body bytes received from the client so far. */
  received = 0;
  readonly #req: Source;
  readonly #limit: number;
  readonly #idleMs: number;
  #timer: NodeJS.Timeout | undefined;
  #attached = false;
  /** Set by fail() before anything reads this body: the first read fails with it. */
  #failure: LbError | undefined;

  constructor(req: IncomingMessage, limit: number, idleMs: number) {
    super({ highWaterMark: 64 * 1024 });
    this.#req = req;
    this.#limit = limit;
    this.#idleMs = idleMs;
    (req as Source)[kBody] = this;
    (req as Source)[kHasBody] = true;
  }

  /** Bytes of `req`'s body received so far (0 when it has no RequestBody). */
  static receivedOf(req: IncomingMessage): number {
    return (req as Source)[kBody]?.received ?? 0;
  }

  /** True when a RequestBody was ever made for `req` (its header object may no longer say it has a body). */
  static madeFor(req: IncomingMessage): boolean {
    return (req as Source)[kHasBody] === true;
  }

  /**
   * The client's stream broke inside the body (a malformed chunk, a close
   * mid-body) and Node answered or dropped the request itself: no 'end',
   * 'error' or 'close' will come, so whoever reads `req`'s body is failed
   * with `err` now — or at its first read: an 'error' nobody listens for
   * would end the process.
   */
  static fail(req: IncomingMessage, err: LbError): void {
    const body = (req as Source)[kBody];
    if (body === undefined || body.destroyed) return;
    if (body.listenerCount('error') > 0) body.destroy(err);
    // Read before, its reader gone since (the upstream request was cancelled): only let go of `req`.
    else if (body.#attached) body.destroy();
    else body.#failure = err;
  }

  override _read(): void {
    const req = this.#req;
    if (this.#failure !== undefined) {
      this.destroy(this.#failure);
      return;
    }
    if (!this.#attached) {
      this.#attached = true;
      req.on('data', RequestBody.#onData);
      req.on('end', RequestBody.#onEnd);
      req.on('error', RequestBody.#onError);
      req.on('close', RequestBody.#onClose);
      if (this.#idleMs > 0) this.#timer = setTimeout(RequestBody.#onIdle, this.#idleMs, this);
      if (req.readableEnded) this.push(null);
      return;
    }
    this.#timer?.refresh();
    req.resume();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.#detach();
    callback(err);
  }

  #detach(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const req = this.#req;
    if (req[kBody] === this) req[kBody] = undefined;
    if (!this.#attached) return;
    this.#attached = false;
    req.off('data', RequestBody.#onData);
    req.off('end', RequestBody.#onEnd);
    req.off('error', RequestBody.#onError);
    req.off('close', RequestBody.#onClose);
  }

  static #onData(this: Source, chunk: Buffer): void {
    const body = this[kBody];
    if (body === undefined) return;
    body.received += chunk.length;
    if (body.received > body.#limit) {
      this.pause();
      body.destroy(TOO_LARGE);
      return;
    }
    body.#timer?.refresh();
    if (!body.push(chunk)) this.pause();
  }

  static #onEnd(this: Source): void {
    const body = this[kBody];
    if (body === undefined) return;
    if (body.#timer !== undefined) {
      clearTimeout(body.#timer);
      body.#timer = undefined;
    }
    body.push(null);
  }

  static #onError(this: Source, err: Error): void {
    this[kBody]?.destroy(new LbError('LB_ERR_CLIENT_GONE', undefined, { cause: err }));
  }

  /** The client connection closed before the body ended. */
  static #onClose(this: Source): void {
    const body = this[kBody];
    if (body !== undefined && !this.complete) body.destroy(new LbError('LB_ERR_CLIENT_GONE'));
  }

  static #onIdle(body: RequestBody): void {
    // Paused because the consumer is slow, not the client: _read() re-arms the timer.
    if (body.#req.isPaused() || body.destroyed) return;
    body.destroy(
      new LbError('LB_ERR_REQUEST_TIMEOUT', `The request body stalled for more than ${body.#idleMs / 1000}s; send it without long pauses.`),
    );
  }
}
