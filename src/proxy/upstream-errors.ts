/**
 * The one place that decides what an upstream failure means to a client.
 * The backend client's errors carry undici's stable codes (so do undici's
 * own, for Upgrade requests: src/client/client-errors.ts); connection
 * failures arrive as plain Node errors (ECONNREFUSED), and refused
 * responses as llhttp's (HPE_…).
 */
import { LbError, type ErrorCode } from '../errors.js';
import { describeShortage, localResourceCode } from '../local-resource-error.js';
import { failedOnConnectedSocket } from './backend-socket.js';

const BY_CODE: Record<string, ErrorCode> = {
  ECONNREFUSED: 'LB_ERR_UPSTREAM_CONNECT',
  ENOTFOUND: 'LB_ERR_UPSTREAM_CONNECT',
  EAI_AGAIN: 'LB_ERR_UPSTREAM_CONNECT',
  EHOSTUNREACH: 'LB_ERR_UPSTREAM_CONNECT',
  ENETUNREACH: 'LB_ERR_UPSTREAM_CONNECT',
  UND_ERR_CONNECT_TIMEOUT: 'LB_ERR_UPSTREAM_CONNECT_TIMEOUT',
  ETIMEDOUT: 'LB_ERR_UPSTREAM_CONNECT_TIMEOUT',
  UND_ERR_HEADERS_TIMEOUT: 'LB_ERR_UPSTREAM_TIMEOUT',
  UND_ERR_BODY_TIMEOUT: 'LB_ERR_UPSTREAM_TIMEOUT',
  UND_ERR_SOCKET: 'LB_ERR_UPSTREAM_RESET',
  ECONNRESET: 'LB_ERR_UPSTREAM_RESET',
  EPIPE: 'LB_ERR_UPSTREAM_RESET',
  UND_ERR_CLOSED: 'LB_ERR_UPSTREAM_RESET',
  UND_ERR_DESTROYED: 'LB_ERR_UPSTREAM_RESET',
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: 'LB_ERR_UPSTREAM_PROTOCOL',
  UND_ERR_RES_EXCEEDED_MAX_SIZE: 'LB_ERR_UPSTREAM_PROTOCOL',
  UND_ERR_HEADERS_OVERFLOW: 'LB_ERR_UPSTREAM_PROTOCOL',
  UND_ERR_INFO: 'LB_ERR_UPSTREAM_PROTOCOL',
  UND_ERR_ABORTED: 'LB_ERR_CLIENT_GONE',
  UND_ERR_REQ_CONTENT_LENGTH_MISMATCH: 'LB_ERR_BAD_REQUEST',
};

/** Sent with LB_ERR_LOCAL_RESOURCES, as with every 503 of the proxy's own: the shortage is usually brief. */
const RETRY_SHORTLY: Readonly<Record<string, string>> = { 'retry-after': '1' };

/**
 * undici's SocketError (UND_ERR_SOCKET) messages that are not a closed
 * connection but a response it refuses: a `100 Continue` (undici 7 cannot
 * read one it did not ask for), a response to no request, a `101` to a
 * request that asked for no upgrade. The code is shared with real resets, so
 * only the message tells them apart; test/proxy/upstream-errors.test.ts
 * provokes each from a real socket, so an undici upgrade that rewords them
 * fails the tests.
 */
const REFUSED_RESPONSE_MESSAGES: ReadonlySet<string> = new Set(['bad response', 'bad upgrade']);

/**
 * OpenSSL's certificate verification failures, by the code Node gives them
 * (the "X509 certificate error codes" of Node's tls docs). Like the
 * `ERR_TLS_…` (a name the certificate does not list) and `ERR_SSL_…` (the
 * backend does not speak TLS) codes, they end a connection to an https
 * backend before a byte of the request was sent: the backend could not be
 * reached, it did not close anything.
 */
const CERTIFICATE_REFUSED: ReadonlySet<string> = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_CRL',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECRYPT_CRL_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CRL_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CRL_NOT_YET_VALID',
  'CRL_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'ERROR_IN_CRL_LAST_UPDATE_FIELD',
  'ERROR_IN_CRL_NEXT_UPDATE_FIELD',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
]);

function isTlsConnectFailure(code: string): boolean {
  return code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_') || CERTIFICATE_REFUSED.has(code);
}

/**
 * A connection that could not be opened because this process ran short of
 * its own resources (EMFILE, ENOBUFS, EADDRNOTAVAIL…). Only before it was
 * established: then nothing of the request was sent, so a retry may send
 * even a POST again. On an established connection part of the request may
 * have gone out, and the failure keeps the meaning of a broken connection.
 */
function isLocalConnectFailure(err: object): boolean {
  return localResourceCode(err) !== undefined && !failedOnConnectedSocket(err);
}

/** The stable code for an error from undici or the socket under it. */
export function upstreamErrorCode(err: unknown): ErrorCode {
  if (typeof err !== 'object' || err === null) return 'LB_ERR_UPSTREAM_RESET';
  if (isLocalConnectFailure(err)) return 'LB_ERR_LOCAL_RESOURCES';
  const e = err as { code?: unknown; name?: unknown; message?: unknown };
  const code = e.code;
  if (typeof code !== 'string') {
    // llhttp refused the response (status line, header, framing, chunk).
    // undici 7 leaves HTTPParserError's code undefined (it looks the llhttp
    // error number up in a name → number map), so its name is what is left.
    return e.name === 'HTTPParserError' ? 'LB_ERR_UPSTREAM_PROTOCOL' : 'LB_ERR_UPSTREAM_RESET';
  }
  if (code === 'UND_ERR_SOCKET') {
    return typeof e.message === 'string' && REFUSED_RESPONSE_MESSAGES.has(e.message) ? 'LB_ERR_UPSTREAM_PROTOCOL' : 'LB_ERR_UPSTREAM_RESET';
  }
  // The HPE_* code llhttp's errors are meant to carry (an undici that fills it in again).
  if (code.startsWith('HPE_')) return 'LB_ERR_UPSTREAM_PROTOCOL';
  // Only while connecting: a TLS error on an established connection (a bad
  // record) may come after the request was sent, and a connect error would
  // let the retry plugin send even a POST again.
  if (isTlsConnectFailure(code) && !failedOnConnectedSocket(err)) return 'LB_ERR_UPSTREAM_CONNECT';
  return BY_CODE[code] ?? 'LB_ERR_UPSTREAM_RESET';
}

/** Maps an error from undici (or the socket under it) to an LbError. */
export function upstreamError(err: unknown, backendUrl: string): LbError {
  if (err instanceof LbError) return err;
  if ((err as { code?: unknown } | null)?.code === 'UND_ERR_INVALID_ARG') {
    // undici refused to send the request at all (a header value with CR/LF or
    // a control character, a second Host): the client's request passed the
    // parser, so a plugin made it unsendable. Nothing reached the backend,
    // and it must not be blamed (passive detection, circuit breaker, retry).
    const message = `a plugin left a request that cannot be sent: ${(err as Error).message}`;
    return new LbError('LB_ERR_PLUGIN', message, { cause: Object.assign(err as object, { backend: backendUrl }) });
  }
  const code = upstreamErrorCode(err);
  const cause = Object.assign(err as object, { backend: backendUrl });
  if (code === 'LB_ERR_LOCAL_RESOURCES') {
    // The message is the log line (clients get the generic one: error-response.ts); Retry-After as for any 503 of ours.
    const message = `no connection to backend ${backendUrl} could be opened, and the backend is not blamed: ${describeShortage(localResourceCode(err)!)}`;
    return new LbError(code, message, { cause, headers: RETRY_SHORTLY });
  }
  return new LbError(code, undefined, { cause });
}

/**
 * Failures that mean the backend itself is unwell (passive detection counts
 * these): it could not be reached, it broke the connection off, or it sent
 * something that is not HTTP — a backend answering garbage fails every
 * request sent to it, as surely as one that is down. Timeouts are not
 * counted: a slow answer may be the request's fault (a heavy query), not
 * the backend's. Nor is a connection this process could not open for lack
 * of its own resources (LB_ERR_LOCAL_RESOURCES): see isLocalFault.
 */
export function isBackendFault(err: LbError): boolean {
  return (
    err.code === 'LB_ERR_UPSTREAM_CONNECT' ||
    err.code === 'LB_ERR_UPSTREAM_CONNECT_TIMEOUT' ||
    err.code === 'LB_ERR_UPSTREAM_RESET' ||
    err.code === 'LB_ERR_UPSTREAM_PROTOCOL'
  );
}

/**
 * Failures of this process, not of the backend it was sending to: a plugin
 * made the request unsendable, or no connection could be opened for lack of
 * local resources. They count in none of the backend's figures (failures,
 * passive detection): blaming every backend for a local shortage would take
 * them all out of rotation and turn local overload into a pool-wide outage.
 */
export function isLocalFault(err: LbError): boolean {
  return err.code === 'LB_ERR_PLUGIN' || err.code === 'LB_ERR_LOCAL_RESOURCES';
}
