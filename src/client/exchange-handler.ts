/**
 * What the backend client reports a request's progress to, and what it
 * hands the request's owner to act on it. Shaped after undici's dispatch
 * handler, minus what a proxy never needs (trailers, upgrade, raw Buffers
 * for header text). The names differ from undici's on purpose: one
 * handler serves both clients, and undici picks its handler API by which
 * of its method names a handler has.
 */
import type { Readable } from 'node:stream';

/** One request to a backend: what dispatch() is given. */
export interface BackendRequestOptions {
  readonly method: string;
  readonly path: string;
  /** Names in lower case; undefined values are skipped (stripped hop-by-hop headers). */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** null: no body; a Buffer is written with the head; a stream is sent as it is read, with backpressure. */
  readonly body: Buffer | Readable | null;
  /** From the request's write until its response head is in; 0: no limit. */
  readonly headersTimeout: number;
  /** Longest pause between response body bytes, not counting pauses the handler asked for; 0: no limit. */
  readonly bodyTimeout: number;
  /** Set: an Upgrade request (sent through undici, which can hand its socket over). */
  readonly upgrade?: string | undefined;
}

/** The request's owner acts on it through this (the connection it runs on); calls for another request are ignored. */
export interface RequestControl {
  /** Ends the request with `err` (onExchangeError follows at once): the connection is closed if a byte of it was sent. */
  abort(handler: ExchangeHandler, err: Error): void;
  /** Lets response body bytes flow again after onExchangeData returned false. */
  resume(handler: ExchangeHandler): void;
}

export interface ExchangeHandler {
  /** The request got a connection and is about to be written; it may be aborted from here on. */
  onExchangeStart(control: RequestControl): void;
  /** The final response head (1xx interim responses are not reported): header names and values as sent, alternating. */
  onExchangeHead(statusCode: number, rawHeaders: string[]): void;
  /** A piece of the response body; false asks for a pause until control.resume(). */
  onExchangeData(chunk: Buffer): boolean;
  onExchangeEnd(): void;
  /** The request failed, before or after its response head; nothing follows. */
  onExchangeError(err: Error): void;
}
