/**
 * Small request bodies are read whole before the request goes upstream, as
 * nginx does by default: a body with a Content-Length of at most
 * WHOLE_BODY_LIMIT becomes one Buffer. Forwarding a Buffer is one write with
 * the request head instead of two streams piped into each other (the
 * RequestBody wrapper and the backend client's body writer), and a Buffer can be sent
 * again, so a retry needs no copy of its own. Larger and chunked bodies
 * stream (request-body.ts).
 *
 * While the body arrives, `body_timeout` applies between chunks (408), and a
 * client that goes away fails the request as LB_ERR_CLIENT_GONE.
 */
import type { IncomingMessage } from 'node:http';
import { LbError } from '../errors.js';

/** Largest Content-Length read whole before forwarding. */
export const WHOLE_BODY_LIMIT = 64 * 1024;

const kReader = Symbol('switchyard.wholeBody');

type Source = IncomingMessage & { [kReader]?: WholeBodyReader };

/**
 * True when `req`'s body is read whole: a Content-Length within the limit.
 * (Never a Transfer-Encoding one: the guard refuses both together.)
 */
export function isWholeBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return length !== undefined && Number(length) <= WHOLE_BODY_LIMIT;
}

/** Reads `req`'s body into one Buffer. Listeners are static and the state lives on one object: no closure per request. */
export function readWholeBody(req: IncomingMessage, idleMs: number): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const reader = new WholeBodyReader(req as Source, idleMs, resolve, reject);
    (req as Source)[kReader] = reader;
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

/**
 * Fails the read of `req`'s body under way, if any, with `err`: the client's
 * stream broke inside the body and Node answered or dropped the request
 * itself, so no 'end', 'error' or 'close' will come (traffic-server.ts).
 */
export function failWholeBody(req: IncomingMessage, err: LbError): void {
  (req as Source)[kReader]?.finish(err);
}

class WholeBodyReader {
  first: Buffer | undefined;
  rest: Buffer[] | undefined;
  size = 0;
  readonly timer: NodeJS.Timeout | undefined;

  constructor(
    readonly req: Source,
    readonly idleMs: number,
    readonly resolve: (body: Buffer) => void,
    readonly reject: (err: LbError) => void,
  ) {
    this.timer = idleMs > 0 ? setTimeout(onIdle, idleMs, this) : undefined;
  }

  finish(err: LbError | undefined): void {
    const req = this.req;
    if (req[kReader] !== this) return;
    req[kReader] = undefined;
    if (this.timer !== undefined) clearTimeout(this.timer);
    req.off('data', onData);
    req.off('end', onEnd);
    req.off('error', onError);
    req.off('close', onClose);
    if (err !== undefined) this.reject(err);
    else if (this.rest !== undefined) this.resolve(Buffer.concat([this.first!, ...this.rest], this.size));
    else this.resolve(this.first ?? Buffer.alloc(0));
  }
}

function onData(this: Source, chunk: Buffer): void {
  const reader = this[kReader];
  if (reader === undefined) return;
  if (reader.first === undefined) reader.first = chunk;
  else (reader.rest ??= []).push(chunk);
  reader.size += chunk.length;
  reader.timer?.refresh();
}

function onEnd(this: Source): void {
  this[kReader]?.finish(undefined);
}

function onError(this: Source, err: Error): void {
  this[kReader]?.finish(new LbError('LB_ERR_CLIENT_GONE', undefined, { cause: err }));
}

/** The client connection closed before the body ended. */
function onClose(this: Source): void {
  if (!this.complete) this[kReader]?.finish(new LbError('LB_ERR_CLIENT_GONE'));
}

function onIdle(reader: WholeBodyReader): void {
  reader.finish(
    new LbError('LB_ERR_REQUEST_TIMEOUT', `The request body stalled for more than ${reader.idleMs / 1000}s; send it without long pauses.`),
  );
}
