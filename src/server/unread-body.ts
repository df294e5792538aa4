/**
 * A response can be complete while the client is still sending its request
 * body: the backend answered early (413, 401, a fast error), or the core or a
 * plugin answered without reading it. The connection must not stay stuck
 * behind the unread rest (it would never become idle, and shutdown would
 * wait for it), and closing it at once is no better: closing a socket with
 * unread input sends a reset, which can destroy the response before the
 * client has read it. So, decided before the response head is written:
 *
 * - a small rest (Content-Length known, at most DRAIN_LIMIT bytes to come):
 *   the connection stays, and the rest is read and discarded after the
 *   response;
 * - otherwise `Connection: close`, then a lingering close: our side is ended
 *   (FIN) once the response is out, the client's bytes are read and
 *   discarded until it closes too or LINGER_MS pass, then the socket goes.
 *
 * A request pipelined behind one that closes the connection is never served.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { RequestBody } from './request-body.js';

/** Unread body bytes still drained on a kept connection. */
export const DRAIN_LIMIT = 256 * 1024;
/** Longest a closing connection keeps reading (and discarding) what the client sends. */
export const LINGER_MS = 2000;

const kClosing = Symbol('switchyard.closing');
const kLingerSocket = Symbol('switchyard.lingerSocket');

type ClosingSocket = Socket & { [kClosing]?: true };
type LingeringResponse = ServerResponse & { [kLingerSocket]?: ClosingSocket };

/** Nothing more is served on `socket`: it closes once its last answer is out. */
export function markClosing(socket: Socket): void {
  (socket as ClosingSocket)[kClosing] = true;
}

/** True once a response on this connection announced `Connection: close`: nothing more is served on it. */
export function isClosing(socket: Socket): boolean {
  return (socket as ClosingSocket)[kClosing] === true;
}

/**
 * The client may still be sending a body: one was announced and has not all
 * arrived. (`req.complete` alone is not it: Node sets it only after the
 * 'request' event, even for a request without a body. Nor are the headers
 * once admitted: Transfer-Encoding is stripped, and plugins may edit them.)
 */
export function hasUnreadBody(req: IncomingMessage): boolean {
  if (req.complete) return false;
  if (RequestBody.madeFor(req)) return true;
  const length = req.headers['content-length'];
  return length !== undefined ? Number(length) > 0 : req.headers['transfer-encoding'] !== undefined;
}

/**
 * For a response about to be written while the request body is not complete:
 * keep the connection when the rest is small (drainUnreadBody reads it
 * after the response), else close it after the response.
 */
export function settleUnreadBody(req: IncomingMessage, res: ServerResponse): void {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) - RequestBody.receivedOf(req) <= DRAIN_LIMIT) return;
  closeAfterResponse(req, res);
}

/** After a kept connection's response: read and discard what is left of the request body. */
export function drainUnreadBody(req: IncomingMessage): void {
  if (hasUnreadBody(req) && !req.destroyed && !isClosing(req.socket)) req.resume();
}

/** Sends `Connection: close` on `res` and ends the connection once it is out, lingering over an unread body. */
export function closeAfterResponse(req: IncomingMessage, res: ServerResponse): void {
  res.shouldKeepAlive = false;
  (req.socket as ClosingSocket)[kClosing] = true;
  const socket = res.socket as ClosingSocket | null;
  // Queued behind an earlier pipelined response (no socket yet): Node closes after it, without lingering.
  if (socket === null || !hasUnreadBody(req) || (res as LingeringResponse)[kLingerSocket] !== undefined) return;
  (res as LingeringResponse)[kLingerSocket] = socket;
  res.once('finish', lingerOnFinish);
}

function lingerOnFinish(this: LingeringResponse): void {
  const socket = this[kLingerSocket];
  if (socket === undefined || socket.destroyed || this.req.complete) return;
  // Node's own 'finish' handler ran first: it ended our side and set the
  // socket to be destroyed once the last byte is written. Keep it reading
  // instead, until the client closes or the linger time is over.
  socket.removeListener('finish', socket.destroy);
  socket.once('end', destroySocket);
  setTimeout(destroyIfOpen, LINGER_MS, socket).unref();
  this.req.resume();
  // After an Upgrade request Node no longer reads the socket itself.
  socket.resume();
}

function destroySocket(this: Socket): void {
  this.destroy();
}

function destroyIfOpen(socket: Socket): void {
  if (!socket.destroyed) socket.destroy();
}
