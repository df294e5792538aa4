/**
 * One request at a time per client connection, as in nginx and HAProxy.
 * Node's parser emits every request it finds in what it read, so a client
 * that pipelines would otherwise have all of them served at once: a PUT and
 * the GET behind it reach the backend in either order, and one connection
 * can take every backend connection of a pool. Here a request is served only
 * once the response before it on the same connection has closed (complete,
 * or the connection is gone); the others wait their turn, in order.
 *
 * The common case pays one property read and one write per request: the
 * waiting list exists only while a second request has actually arrived
 * during one in flight, and is dropped when the connection can carry no
 * more answers.
 *
 * The list is bounded by reading: past MAX_WAITING waiting requests the
 * socket stops being read, the way Node itself stops reading a client whose
 * answers pile up (`socket._paused`, then the parser is paused after the
 * chunk it is executing), and reading resumes once every waiting request
 * has been started. Node's parser emits every request of the chunk it is
 * executing before a pause takes hold, so up to one read's worth more may
 * wait. Node resumes a socket it sees paused when its write side drains;
 * the next request then finds the list full and pauses it again.
 */
import type { Socket } from 'node:net';
import { isClosing } from './unread-body.js';

/** Requests that may wait on one connection before it stops being read. */
export const MAX_WAITING = 16;

const kBusy = Symbol('switchyard.busy');
const kWaiting = Symbol('switchyard.waiting');
const kReadingPaused = Symbol('switchyard.readingPaused');

/** The fields of Node's HTTP server socket that its own flow control uses (`_http_server`). */
type ClientSocket = Socket & {
  [kBusy]?: true;
  [kWaiting]?: unknown[];
  [kReadingPaused]?: true;
  _paused?: boolean;
  parser?: { pause(): void; resume(): void } | null;
};

/**
 * True when nothing is in flight on `socket`: the caller serves its request
 * now, and must call passTurn once that request's response has closed.
 * False: the caller hands the request to waitTurn.
 */
export function takeTurn(socket: Socket): boolean {
  if ((socket as ClientSocket)[kBusy] === true) return false;
  (socket as ClientSocket)[kBusy] = true;
  return true;
}

/** Queues `request` behind the one in flight on `socket`; passTurn hands it back when its turn comes. */
export function waitTurn(socket: Socket, request: unknown): void {
  const client = socket as ClientSocket;
  const waiting = (client[kWaiting] ??= []);
  waiting.push(request);
  if (waiting.length > MAX_WAITING) pauseReading(client);
}

/**
 * The response in flight on `socket` has closed. Returns the request to
 * serve next (the connection stays busy with it), or undefined: nothing
 * waits, or the connection carries no more answers (closed, closing after
 * that response) and what waited is dropped unserved.
 */
export function passTurn<T>(socket: Socket): T | undefined {
  const client = socket as ClientSocket;
  const waiting = client[kWaiting];
  if (waiting === undefined) {
    client[kBusy] = undefined;
    return undefined;
  }
  if (socket.destroyed || !socket.writable || isClosing(socket)) {
    client[kWaiting] = undefined;
    client[kBusy] = undefined;
    return undefined;
  }
  const next = waiting.shift() as T;
  if (waiting.length === 0) {
    client[kWaiting] = undefined;
    // The last request to wait may still be receiving its body: reading must go on before it is served.
    if (client[kReadingPaused] === true) resumeReading(client);
  }
  return next;
}

function pauseReading(socket: ClientSocket): void {
  socket[kReadingPaused] = true;
  if (socket._paused === true) return;
  // What Node does in parserOnIncoming; it pauses the parser itself once the current chunk is executed.
  socket._paused = true;
  socket.pause();
}

function resumeReading(socket: ClientSocket): void {
  socket[kReadingPaused] = undefined;
  // Not paused any more, or paused by Node for its write side: Node resumes that on 'drain'.
  if (socket._paused !== true || socket.writableNeedDrain) return;
  socket._paused = false;
  const parser = socket.parser;
  // No parser: the last request was an Upgrade, and its tunnel reads the socket when it opens.
  if (parser == null) return;
  parser.resume();
  socket.resume();
}
