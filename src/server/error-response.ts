/**
 * Error answers: short plain text (JSON when the client accepts only JSON),
 * never a stack trace. Status and message come from the LbError.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { acceptsOnlyJson, ERRORS, errorJson, LbError } from '../errors.js';
import { closeAfterResponse, hasUnreadBody, LINGER_MS, markClosing, settleUnreadBody } from './unread-body.js';

export function asLbError(err: unknown): LbError {
  if (err instanceof LbError) return err;
  return new LbError('LB_ERR_PLUGIN', undefined, { cause: err });
}

/**
 * Statuses after which the connection's framing cannot be trusted (400),
 * or the client is still sending what we refused (408, 413, 431, 505):
 * the connection is closed after the answer.
 */
function closesConnection(status: number): boolean {
  return status === 400 || status === 408 || status === 413 || status === 431 || status === 505;
}

export function writeError(req: IncomingMessage, res: ServerResponse, error: LbError): void {
  // Answered completely already (a malformed body got its 400 while the pipeline ran).
  if (res.writableEnded) return;
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  if (error.status === 499) {
    res.destroy();
    return;
  }
  const json = acceptsOnlyJson(req.headers.accept);
  // A plugin's own error text, or what this process ran short of, describes internals: the log has it, the client gets the generic line.
  const message = error.code === 'LB_ERR_PLUGIN' || error.code === 'LB_ERR_LOCAL_RESOURCES' ? ERRORS[error.code].message : error.message;
  const body = json ? errorJson(error.code, message) : `${error.status} ${message}\n`;
  const headers: Record<string, string | number> = {
    'content-type': json ? 'application/json' : 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...error.headers,
  };
  if (closesConnection(error.status)) closeAfterResponse(req, res);
  else if (hasUnreadBody(req)) settleUnreadBody(req, res);
  res.writeHead(error.status, headers);
  res.end(req.method === 'HEAD' ? undefined : body);
}

const HEADERS_TOO_LARGE = ERRORS.LB_ERR_HEADERS_TOO_LARGE;
const REQUEST_TIMEOUT = ERRORS.LB_ERR_REQUEST_TIMEOUT;
const BAD_REQUEST = ERRORS.LB_ERR_BAD_REQUEST;

/** The raw answer to a request Node's parser refused (there is no request object to answer through). */
function parserErrorResponse(status: number, message: string): string {
  const reason = status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request';
  const body = `${status} ${message}\n`;
  return (
    `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nCache-Control: no-store\r\n\r\n${body}`
  );
}

const PARSER_ANSWERS = {
  headersTooLarge: parserErrorResponse(HEADERS_TOO_LARGE.status, HEADERS_TOO_LARGE.message),
  timeout: parserErrorResponse(REQUEST_TIMEOUT.status, REQUEST_TIMEOUT.message),
  badRequest: parserErrorResponse(BAD_REQUEST.status, BAD_REQUEST.message),
};

/**
 * Answers a request that llhttp refused (`clientError`): 431 for a header
 * section over `max_header_size`, 408 when it did not arrive within
 * `headers_timeout`, else 400; then closes. When a response to an earlier
 * pipelined request is still being produced on this connection, that
 * request was forwarded and its answer is owed: the refusal is sent after
 * it, as nginx and HAProxy do, and nothing pipelined in between is served.
 *
 * Bytes after a request that closes the connection (`Connection: close`,
 * HTTP/1.0 without keep-alive) are no refused request: RFC 9112 §9.6, that
 * request's response is still sent, what follows is ignored (llhttp reports
 * every later chunk again, and each is dropped here), and the connection
 * closes after the response.
 */
export function answerParserError(err: NodeJS.ErrnoException, socket: Socket): void {
  // `_httpMessage` is the response Node is writing on this socket (it is how Node's own default handler decides).
  const pending = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (err.code === 'HPE_CLOSED_CONNECTION') {
    if (pending == null) socket.destroySoon();
    return;
  }
  // A TLS handshake that failed or timed out (https.Server reports it here too): no HTTP answer can be read by that client.
  if (!socket.writable || isTlsHandshakeFailure(err)) {
    socket.destroy();
    return;
  }
  // From here on nothing more is served on this connection (waiting requests are dropped unserved).
  markClosing(socket);
  const answer =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? PARSER_ANSWERS.headersTooLarge
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? PARSER_ANSWERS.timeout
        : PARSER_ANSWERS.badRequest;
  // Node's own 'finish' handler runs first: if that response said `Connection: close`, the socket is already ending.
  if (pending != null) pending.once('finish', () => endWithAnswer(socket, answer));
  else endWithAnswer(socket, answer);
}

function endWithAnswer(socket: Socket, answer: string): void {
  if (!socket.writable) return;
  socket.end(answer);
  // A client that never closes its side must not hold the socket.
  setTimeout(destroyIfOpen, LINGER_MS, socket).unref();
}

/** Errors of the TLS layer (`ERR_TLS_HANDSHAKE_TIMEOUT`, `ERR_SSL_…`), not of llhttp (`HPE_…`). */
function isTlsHandshakeFailure(err: NodeJS.ErrnoException): boolean {
  const code = err.code;
  return code !== undefined && (code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_'));
}

function destroyIfOpen(socket: Socket): void {
  if (!socket.destroyed) socket.destroy();
}
