/**
 * The request line and header block a backend receives, as one latin1
 * string (one write). What the pipeline left in the header object is
 * checked here, since plugins can change it after the client's parser
 * accepted it: a value with CR or LF would let one request smuggle another
 * onto the backend connection. Such a request is refused (undici's
 * UND_ERR_INVALID_ARG, which the proxy answers as a plugin's fault) before a
 * byte is written.
 *
 * The framing headers are the client's own business, not the caller's:
 * `connection` says keep-alive (the pool reuses the connection), and the
 * body's length is written from the body itself (see BodyFraming).
 */
import { invalidArgument } from './client-errors.js';

/** RFC 9110 §5.6.2 token: a method or a header name. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Anything but HTAB, SP, VCHAR and obs-text (RFC 9110 §5.5): as Node's own check for header values. */
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
/** A request target with a space, a control character or anything past latin1 (undici's rule). */
const INVALID_PATH = /[^\u0021-\u00ff]/;

export type RequestHeaders = Readonly<Record<string, string | string[] | undefined>>;

/** Names written by the client itself, never copied from the header object. */
const OWN = new Set(['connection', 'content-length', 'transfer-encoding', 'keep-alive', 'upgrade', 'expect']);
/** Lengths of the names in OWN, so most names skip the set lookup. */
const OWN_LENGTH = new Uint8Array(32);
for (const name of OWN) OWN_LENGTH[name.length] = 1;

/** Methods whose request means to carry content: with no body they are sent `content-length: 0`, as undici and curl do. */
const EXPECTS_CONTENT = new Set(['POST', 'PUT', 'PATCH']);

/**
 * How the body is framed: a byte count (Content-Length), CHUNKED, or
 * NO_BODY (nothing written, no length header unless the method expects one).
 */
export const CHUNKED = -1;
export const NO_BODY = -2;

/**
 * The Content-Length a streamed body declares, CHUNKED when it declares
 * none. Throws for a value that is not a plain decimal count.
 */
export function declaredLength(headers: RequestHeaders): number {
  const value = headers['content-length'];
  if (value === undefined) return CHUNKED;
  if (typeof value !== 'string' || !/^\d{1,15}$/.test(value)) throw invalidArgument('invalid content-length header');
  return Number(value);
}

function headerLine(name: string, value: string): string {
  if (INVALID_VALUE.test(value)) throw invalidArgument(`invalid ${name} header`);
  return `${name}: ${value}\r\n`;
}

/**
 * The head of a request. `framing`: the body's byte count, CHUNKED or
 * NO_BODY; `host`: the Host to send when the header object has none.
 * Throws (invalidArgument) for a method, path, header name or value that
 * cannot be written as it is.
 */
export function requestHead(method: string, path: string, headers: RequestHeaders, framing: number, host: string): string {
  if (!TOKEN.test(method)) throw invalidArgument('invalid request method');
  if (path.length === 0 || INVALID_PATH.test(path)) throw invalidArgument('invalid request path');
  let head = `${method} ${path} HTTP/1.1\r\n`;
  let hasHost = false;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    const length = name.length;
    if (length < 32 && OWN_LENGTH[length] === 1 && OWN.has(name)) continue;
    if (!TOKEN.test(name)) throw invalidArgument('invalid header name');
    if (typeof value === 'string') head += headerLine(name, value);
    else if (Array.isArray(value)) {
      if (name === 'host') throw invalidArgument('invalid host header');
      for (let i = 0; i < value.length; i++) head += headerLine(name, `${value[i]}`);
    } else head += headerLine(name, `${value as unknown}`);
    if (length === 4 && name === 'host') hasHost = true;
  }
  if (!hasHost) head += `host: ${host}\r\n`;
  if (framing >= 0) head += `content-length: ${framing}\r\n`;
  else if (framing === CHUNKED) head += 'transfer-encoding: chunked\r\n';
  else if (EXPECTS_CONTENT.has(method)) head += 'content-length: 0\r\n';
  return `${head}connection: keep-alive\r\n\r\n`;
}
