/**
 * The errors the backend client fails a request with. They carry undici's
 * codes and messages on purpose: Upgrade requests still go through undici
 * (src/client/backend-client.ts), so one mapping from code to meaning
 * (src/proxy/upstream-errors.ts) serves both clients, and an error logged
 * by either reads the same.
 */

export class ClientError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ClientError';
  }
}

/** The connection broke, or carried something that is no answer to the request (message 'bad response' / 'bad upgrade'). */
export function socketError(message: string): ClientError {
  return new ClientError('UND_ERR_SOCKET', message);
}

/** A plugin left a request that cannot be written (invalid header, path or method). */
export function invalidArgument(message: string): ClientError {
  return new ClientError('UND_ERR_INVALID_ARG', message);
}

export function headersTimeout(): ClientError {
  return new ClientError('UND_ERR_HEADERS_TIMEOUT', 'Headers Timeout Error');
}

export function bodyTimeout(): ClientError {
  return new ClientError('UND_ERR_BODY_TIMEOUT', 'Body Timeout Error');
}

/** The request body ended short of, or ran past, its Content-Length. */
export function requestLengthMismatch(): ClientError {
  return new ClientError('UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', 'Request body length does not match content-length header');
}

/** The request body stream closed without ending: its client went away. */
export function requestAborted(): ClientError {
  return new ClientError('UND_ERR_ABORTED', 'Request aborted');
}

/** A request came after the client was closed (a reload replaced it as it was sent). */
export function clientClosed(): ClientError {
  return new ClientError('UND_ERR_CLOSED', 'The client is closed');
}

/** The client was destroyed (shutdown past its grace) with the request still in it. */
export function clientDestroyed(): ClientError {
  return new ClientError('UND_ERR_DESTROYED', 'The client is destroyed');
}
