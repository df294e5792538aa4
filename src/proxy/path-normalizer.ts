/**
 * The request-target policy, decided once per request and used for both
 * route matching and forwarding, so a path cannot match one route and mean
 * another at the backend (`/public/../admin` is `/admin` to both).
 * docs/hardening.md states the policy for users; in short:
 *
 * - dot segments (`.`, `..`, also written `%2E`) are resolved; `..` above
 *   the root is refused (400);
 * - runs of `/` are merged into one;
 * - percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are
 *   decoded, other escapes are kept with upper-case hex: `%2F` and `%5C`
 *   stay encoded (they are data, not separators);
 * - refused (400): `%` not followed by two hex digits, `%00`, a raw `\`,
 *   a `#`, a segment that is `.`/`..` followed by `;` (`/..;/`), and a
 *   segment where `%2F`/`%5C` sits next to a `.`/`..` part (`..%2F`): those
 *   become dot segments at backends that decode before resolving;
 * - the query (after `?`) is forwarded as received.
 *
 * The common clean path (no `%`, no `//`, no `/.`) is returned as it is,
 * without allocating.
 */

/** Unreserved characters (RFC 3986 §2.3): their escapes are decoded. */
const UNRESERVED = new Uint8Array(128);
for (const c of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~') UNRESERVED[c.charCodeAt(0)] = 1;

const HEX_DIGITS = '0123456789ABCDEF';

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/**
 * An origin-form target (`/path?query`) → the normalized target, or
 * undefined when it must be refused (400).
 */
export function normalizeTarget(target: string): string | undefined {
  const length = target.length;
  if (length === 0 || target.charCodeAt(0) !== 47 /* / */) return undefined;
  let slow = false;
  let end = length;
  for (let i = 0; i < length; i++) {
    const c = target.charCodeAt(i);
    if (c === 63 /* ? */) {
      end = i;
      break;
    }
    if (c === 37 /* % */) slow = true;
    else if (c === 47 /* / */) {
      const next = target.charCodeAt(i + 1);
      if (next === 47 || next === 46 /* . */) slow = true;
    } else if (c === 35 /* # */ || c === 92 /* \ */ || c <= 32 || c >= 127) return undefined;
  }
  // A fragment is never part of a request target; llhttp keeps it in req.url.
  if (end < length && target.indexOf('#', end) !== -1) return undefined;
  if (!slow) return target;
  const path = normalizePath(target.slice(0, end));
  if (path === undefined) return undefined;
  return end === length ? path : path + target.slice(end);
}

function normalizePath(path: string): string | undefined {
  let decoded = '';
  let start = 0;
  for (let i = 0; i < path.length; i++) {
    if (path.charCodeAt(i) !== 37) continue;
    const high = hexValue(path.charCodeAt(i + 1));
    const low = hexValue(path.charCodeAt(i + 2));
    if (high < 0 || low < 0) return undefined;
    const byte = high * 16 + low;
    if (byte === 0) return undefined;
    decoded += path.slice(start, i);
    decoded += byte < 128 && UNRESERVED[byte] === 1 ? String.fromCharCode(byte) : `%${HEX_DIGITS[high]}${HEX_DIGITS[low]}`;
    i += 2;
    start = i + 1;
  }
  decoded += path.slice(start);

  const parts = decoded.split('/');
  const out: string[] = [];
  const last = parts.length - 1;
  // parts[0] is the empty string before the leading "/".
  for (let i = 1; i <= last; i++) {
    const segment = parts[i]!;
    if (segment === '' || segment === '.') {
      if (i === last) out.push('');
      continue;
    }
    if (segment === '..') {
      if (out.length === 0) return undefined;
      out.pop();
      if (i === last) out.push('');
      continue;
    }
    if (isDisguisedDotSegment(segment)) return undefined;
    out.push(segment);
  }
  return `/${out.join('/')}`;
}

const ESCAPED_SEPARATOR = /%2F|%5C/;

/**
 * `.;x`, `..;x` (path parameters: Tomcat and others drop them, then resolve
 * the dots) and `..%2Fx` / `x%2F..` / `.%5C` (backends that decode `%2F` or
 * `%5C` first see a dot segment).
 */
function isDisguisedDotSegment(segment: string): boolean {
  if (segment.charCodeAt(0) === 46 /* . */) {
    const semicolon = segment.indexOf(';');
    const head = semicolon === -1 ? segment : segment.slice(0, semicolon);
    if (head === '.' || head === '..') return true;
  }
  if (segment.indexOf('%2F') === -1 && segment.indexOf('%5C') === -1) return false;
  const parts = segment.split(ESCAPED_SEPARATOR);
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (part === '.' || part === '..') return true;
  }
  return false;
}

/** An absolute-form request target split into its parts. */
export interface AbsoluteTarget {
  /** `host[:port]` as written; not validated here. */
  readonly authority: string;
  /** The origin-form rest: `/path?query` (`/` when the path is empty). */
  readonly target: string;
}

function startsWithIgnoringCase(text: string, prefix: string): boolean {
  if (text.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    let c = text.charCodeAt(i);
    if (c >= 65 && c <= 90) c += 32;
    if (c !== prefix.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * `http://host:port/path?q` (absolute-form, RFC 9112 §3.2.2) → authority and
 * origin-form target; undefined for any other scheme or with userinfo.
 * The authority then replaces Host for routing and forwarding alike.
 */
export function splitAbsoluteForm(url: string): AbsoluteTarget | undefined {
  const start = startsWithIgnoringCase(url, 'http://') ? 7 : startsWithIgnoringCase(url, 'https://') ? 8 : -1;
  if (start === -1) return undefined;
  let end = start;
  while (end < url.length) {
    const c = url.charCodeAt(end);
    if (c === 47 /* / */ || c === 63 /* ? */) break;
    if (c === 64 /* @ */ || c === 35 /* # */) return undefined;
    end++;
  }
  const authority = url.slice(start, end);
  const rest = url.slice(end);
  return { authority, target: rest === '' ? '/' : rest.charCodeAt(0) === 63 ? `/${rest}` : rest };
}
