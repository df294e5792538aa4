/**
 * What a backend socket's failure must tell the proxy that undici does not:
 * whether the socket had carried a response before, and that a reset is a
 * reset. One listener per connection, put before undici's own on the
 * socket's 'error' event (the connector adds it: src/pool/backend-connector.ts);
 * nothing per request. undici reports every socket failure through that
 * event, its own SocketErrors included, with the error object it then fails
 * the request with.
 */
import type { Socket } from 'node:net';

const kOnUsedSocket = Symbol('switchyard.onUsedSocket');

type SocketFailure = Error & { code?: string; [kOnUsedSocket]?: boolean };

/** Watches a connected backend socket; call before undici adds its listeners. */
export function watchBackendSocket(socket: Socket): void {
  socket.prependListener('error', onBackendSocketError);
}

function onBackendSocketError(this: Socket, err: SocketFailure): void {
  // Bytes read before the failure: a response (or part of one) came over
  // this connection, so it was not opened for the request that failed.
  err[kOnUsedSocket] = this.bytesRead > 0;
  // undici treats ECONNRESET during a close-delimited body as the body's
  // end, as a clean close would be (for macOS, which can reset after a whole
  // body). A proxy cannot know such a body is whole, and must not hand a
  // truncated one on as complete: under undici's generic socket-error code
  // the reset fails the request like any other broken connection. The
  // message still says ECONNRESET.
  if (err.code === 'ECONNRESET') err.code = 'UND_ERR_SOCKET';
}

/**
 * Whether `err` broke a backend connection once it was established (TLS
 * handshake done): anything before that is a failure to connect.
 */
export function failedOnConnectedSocket(err: unknown): boolean {
  return typeof err === 'object' && err !== null && kOnUsedSocket in err;
}

/**
 * Whether `err` broke a backend connection that had already read bytes:
 * for a request that got no response head, a kept-alive connection that
 * went stale, never one opened for it.
 */
export function failedOnUsedSocket(err: unknown): boolean {
  return (err as SocketFailure | null)?.[kOnUsedSocket] === true;
}
