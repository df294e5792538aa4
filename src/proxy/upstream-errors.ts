/**
 * The one place that decides what an upstream failure means to a client.
 * undici errors carry stable codes; connection failures arrive as plain
 * Node errors (ECONNREFUSED is not an undici error).
 */
import { LbError, type ErrorCode } from '../errors.js';

const BY_CODE: Record<string, ErrorCode> = {
  ECONNREFUSED: 'LB_ERR_UPSTREAM_CONNECT',
  ENOTFOUND: 'LB_ERR_UPSTREAM_CONNECT',
  EAI_AGAIN: 'LB_ERR_UPSTREAM_CONNECT',
  EHOSTUNREACH: 'LB_ERR_UPSTREAM_CONNECT',
  ENETUNREACH: 'LB_ERR_UPSTREAM_CONNECT',
  EADDRNOTAVAIL: 'LB_ERR_UPSTREAM_CONNECT',
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

/** Maps an error from undici (or the socket under it) to an LbError. */
export function upstreamError(err: unknown, backendUrl: string): LbError {
  if (err instanceof LbError) return err;
  const e = err as { code?: string; message?: string };
  let code: ErrorCode = (e.code !== undefined ? BY_CODE[e.code] : undefined) ?? 'LB_ERR_UPSTREAM_RESET';
  // llhttp reports a backend's malformed response as HPE_* codes.
  if (e.code !== undefined && e.code.startsWith('HPE_')) code = 'LB_ERR_UPSTREAM_PROTOCOL';
  return new LbError(code, undefined, { cause: Object.assign(err as object, { backend: backendUrl }) });
}

/** Failures that mean the backend itself is unwell (passive detection counts these). */
export function isBackendFault(err: LbError): boolean {
  return (
    err.code === 'LB_ERR_UPSTREAM_CONNECT' ||
    err.code === 'LB_ERR_UPSTREAM_CONNECT_TIMEOUT' ||
    err.code === 'LB_ERR_UPSTREAM_RESET'
  );
}
