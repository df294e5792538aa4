/**
 * Error answers: short plain text (JSON when the client accepts only JSON),
 * never a stack trace. Status and message come from the LbError.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LbError } from '../errors.js';

export function asLbError(err: unknown): LbError {
  if (err instanceof LbError) return err;
  return new LbError('LB_ERR_PLUGIN', undefined, { cause: err });
}

function wantsOnlyJson(req: IncomingMessage): boolean {
  const accept = req.headers.accept;
  return accept !== undefined && accept.includes('application/json') && !accept.includes('text/') && !accept.includes('*/*');
}

export function writeError(req: IncomingMessage, res: ServerResponse, error: LbError): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  if (error.status === 499) {
    res.destroy();
    return;
  }
  const json = wantsOnlyJson(req);
  const body = json
    ? JSON.stringify({ error: error.code, message: error.message, status: error.status })
    : `${error.status} ${error.message}\n`;
  const headers: Record<string, string | number> = {
    'content-type': json ? 'application/json' : 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...error.headers,
  };
  // After a malformed request the connection's framing cannot be trusted.
  if (error.status === 400 || error.status === 413 || error.status === 431) headers.connection = 'close';
  res.writeHead(error.status, headers);
  res.end(req.method === 'HEAD' ? undefined : body);
}
