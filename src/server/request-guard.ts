/**
 * Framing and Host checks that Node's parser (llhttp) lets through, decided
 * once per request in one pass over `rawHeaders`, before anything is routed
 * or forwarded. A request that fails gets 400 (431, 505) with the connection
 * closed, and nothing of it reaches a backend.
 *
 * What llhttp already rejects on Node 20 (it ends in the server's
 * `clientError`, never here): Content-Length together with
 * Transfer-Encoding, duplicate or non-numeric Content-Length, a coding after
 * `chunked`, whitespace before the colon, obs-fold, bare CR or LF, NUL and
 * other control characters, HTTP/1.2+ minor versions, unknown methods.
 *
 * What it accepts and this refuses:
 * - HTTP/0.9 (400) and HTTP/2.0 request lines (505);
 * - HTTP/1.1 without Host, more than one Host, a Host that is not
 *   `host[:port]` (an empty one included);
 * - any Transfer-Encoding but a single `chunked` (`gzip, chunked`, two
 *   Transfer-Encoding fields, `,chunked`), and Transfer-Encoding on HTTP/1.0;
 * - `Content_Length` / `Transfer_Encoding`: some servers and CGI gateways
 *   read `_` as `-`, so the backend could frame the body differently;
 * - more header fields than `max_headers_count` (431): Node would silently
 *   drop the extra ones, and a truncated header set is never forwarded.
 *
 * The same pass drops (not refuses) `X_Forwarded_For` and the other
 * spellings of the forwarding headers with `_` for `-`, for the reason
 * src/proxy/forwarded-headers.ts gives: this is the one loop over every
 * header name a request already pays for.
 *
 * A clean request allocates nothing here: names are compared by length
 * first, then character by character.
 */
import type { IncomingMessage } from 'node:http';
import { LbError } from '../errors.js';
import { isForwardingHeaderAlias } from '../proxy/forwarded-headers.js';

const HTTP_09 = new LbError('LB_ERR_BAD_REQUEST', 'HTTP/0.9 requests are not accepted: send HTTP/1.1.');
const HTTP_VERSION = new LbError('LB_ERR_HTTP_VERSION');
const TOO_MANY_HEADERS = new LbError('LB_ERR_HEADERS_TOO_LARGE', 'The request has too many header fields.');
const NO_HOST = new LbError('LB_ERR_BAD_REQUEST', 'An HTTP/1.1 request needs a Host header.');
const DUPLICATE_HOST = new LbError('LB_ERR_BAD_REQUEST', 'The request has more than one Host header.');
const INVALID_HOST = new LbError('LB_ERR_BAD_REQUEST', 'The Host header is not a valid host[:port].');
const INVALID_TRANSFER_ENCODING = new LbError(
  'LB_ERR_BAD_REQUEST',
  'Transfer-Encoding must be exactly "chunked" (once, and not on HTTP/1.0).',
);
const DUPLICATE_CONTENT_LENGTH = new LbError('LB_ERR_BAD_REQUEST', 'The request has more than one Content-Length.');
const FRAMING_CONFLICT = new LbError('LB_ERR_BAD_REQUEST', 'The request has both Content-Length and Transfer-Encoding.');
const UNDERSCORE_FRAMING = new LbError(
  'LB_ERR_BAD_REQUEST',
  'Header names like Content_Length or Transfer_Encoding are refused: use hyphens.',
);

const CHAR_UNDERSCORE = 95;
const CHAR_HYPHEN = 45;

/** Characters of a host name (RFC 3986 reg-name without pct-encoding and sub-delims, plus `_`). */
const HOST_NAME_CHAR = new Uint8Array(128);
for (const c of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~') HOST_NAME_CHAR[c.charCodeAt(0)] = 1;
/** Characters inside `[…]` of an IPv6 literal. */
const IPV6_CHAR = new Uint8Array(128);
for (const c of '0123456789abcdefABCDEF:.') IPV6_CHAR[c.charCodeAt(0)] = 1;

/**
 * True when `name` equals the lower-case `target` ignoring ASCII case, with
 * `_` accepted where `target` has `-`. Callers compare lengths first.
 */
function equalsFolded(name: string, target: string): boolean {
  for (let i = 0; i < target.length; i++) {
    let c = name.charCodeAt(i);
    if (c >= 65 && c <= 90) c += 32;
    else if (c === CHAR_UNDERSCORE) c = CHAR_HYPHEN;
    if (c !== target.charCodeAt(i)) return false;
  }
  return true;
}

function hasUnderscore(name: string): boolean {
  return name.indexOf('_') !== -1;
}

/** `host`, `host:port`, `[v6]`, `[v6]:port`; the port is 1–5 digits up to 65535. */
export function isValidHostHeader(value: string): boolean {
  const length = value.length;
  if (length === 0 || length > 261) return false;
  let i = 0;
  if (value.charCodeAt(0) === 91 /* [ */) {
    i = 1;
    while (i < length && value.charCodeAt(i) !== 93 /* ] */) {
      const c = value.charCodeAt(i);
      if (c > 127 || IPV6_CHAR[c] !== 1) return false;
      i++;
    }
    if (i === length || i < 3) return false;
    i++;
  } else {
    while (i < length) {
      const c = value.charCodeAt(i);
      if (c === 58 /* : */) break;
      if (c > 127 || HOST_NAME_CHAR[c] !== 1) return false;
      i++;
    }
    if (i === 0 || i > 255) return false;
  }
  if (i === length) return true;
  if (value.charCodeAt(i) !== 58) return false;
  const digits = length - i - 1;
  if (digits < 1 || digits > 5) return false;
  let port = 0;
  for (let j = i + 1; j < length; j++) {
    const c = value.charCodeAt(j);
    if (c < 48 || c > 57) return false;
    port = port * 10 + (c - 48);
  }
  return port <= 65535;
}

/** `chunked`, any case, with optional spaces or tabs around it. */
function isChunkedOnly(value: string): boolean {
  let start = 0;
  let end = value.length;
  while (start < end && (value.charCodeAt(start) === 32 || value.charCodeAt(start) === 9)) start++;
  while (end > start && (value.charCodeAt(end - 1) === 32 || value.charCodeAt(end - 1) === 9)) end--;
  if (end - start !== 7) return false;
  const target = 'chunked';
  for (let i = 0; i < 7; i++) {
    let c = value.charCodeAt(start + i);
    if (c >= 65 && c <= 90) c += 32;
    if (c !== target.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * Returns why the request must be refused, or undefined when it may go on.
 * `maxHeadersCount` is the configured limit; the server keeps one more
 * field than that, so that going over it is visible here.
 */
export function checkRequest(req: IncomingMessage, maxHeadersCount: number): LbError | undefined {
  const major = req.httpVersionMajor;
  const minor = req.httpVersionMinor;
  if (major !== 1 || minor > 1) return major === 0 ? HTTP_09 : HTTP_VERSION;

  const raw = req.rawHeaders;
  if (raw.length > maxHeadersCount * 2) return TOO_MANY_HEADERS;
  let host: string | undefined;
  let hosts = 0;
  let contentLengths = 0;
  let transferEncoding: string | undefined;
  let transferEncodings = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const length = name.length;
    if (length === 4) {
      if (equalsFolded(name, 'host')) {
        hosts++;
        host = raw[i + 1];
      }
    } else if (length === 14) {
      if (equalsFolded(name, 'content-length')) {
        if (hasUnderscore(name)) return UNDERSCORE_FRAMING;
        contentLengths++;
      }
    } else if (length === 17 && equalsFolded(name, 'transfer-encoding')) {
      if (hasUnderscore(name)) return UNDERSCORE_FRAMING;
      transferEncodings++;
      transferEncoding = raw[i + 1];
    } else if (isForwardingHeaderAlias(name)) {
      // Node keys req.headers by the lower-cased name; the backend client skips undefined values (no delete: it deopts the object).
      req.headers[name.toLowerCase()] = undefined;
    }
  }
  if (hosts > 1) return DUPLICATE_HOST;
  if (host === undefined) {
    if (minor === 1) return NO_HOST;
  } else if (!isValidHostHeader(host)) {
    return INVALID_HOST;
  }
  if (contentLengths > 1) return DUPLICATE_CONTENT_LENGTH;
  if (transferEncodings > 0) {
    if (transferEncodings > 1 || minor === 0 || !isChunkedOnly(transferEncoding!)) return INVALID_TRANSFER_ENCODING;
    if (contentLengths > 0) return FRAMING_CONFLICT;
  }
  return undefined;
}
