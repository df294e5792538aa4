/**
 * Reading a cookie from a request's Cookie header, for plugins that key on
 * one (affinity, rate limits, hashing). Per request, so it scans the header
 * in place: no split, no regex, no array.
 */

const SPACE = 0x20;
const TAB = 0x09;
const EQUALS = 0x3d;
const DQUOTE = 0x22;

/**
 * The value of cookie `name` in a Cookie header (`a=1; sid=abc`), or
 * `undefined` when it is absent. Pass `ctx.headers.cookie` as it is: Node
 * joins repeated Cookie headers with "; ", and a list of headers (HTTP/2, or
 * headers built by hand) is searched in order.
 *
 * - Names are case-sensitive and must match whole (`sid` does not match
 *   `xsid` or `sidx`); the first cookie with the name wins.
 * - Space and tab before a pair and after a value are ignored; the value is
 *   everything after the first `=` up to `;`, so it may contain `=`.
 * - A value in double quotes (`sid="abc"`, RFC 6265's quoted form) is
 *   returned without them.
 * - A present but empty value (`sid=`) is `''`, not `undefined`: decide
 *   yourself whether that counts as missing.
 *
 * @example
 * ```ts
 * readCookie(ctx.headers.cookie, 'session') // 'abc' for "a=1; session=abc"
 * ```
 */
export function readCookie(header: string | string[] | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  if (typeof header !== 'string') {
    for (let i = 0; i < header.length; i++) {
      const value = readCookie(header[i], name);
      if (value !== undefined) return value;
    }
    return undefined;
  }
  const len = header.length;
  const n = name.length;
  let i = 0;
  while (i < len) {
    while (i < len && (header.charCodeAt(i) === SPACE || header.charCodeAt(i) === TAB)) i++;
    let end = header.indexOf(';', i);
    if (end === -1) end = len;
    if (i + n < end && header.charCodeAt(i + n) === EQUALS && header.startsWith(name, i)) {
      let start = i + n + 1;
      let stop = end;
      while (stop > start && (header.charCodeAt(stop - 1) === SPACE || header.charCodeAt(stop - 1) === TAB)) stop--;
      if (stop - start >= 2 && header.charCodeAt(start) === DQUOTE && header.charCodeAt(stop - 1) === DQUOTE) {
        start++;
        stop--;
      }
      return header.slice(start, stop);
    }
    i = end + 1;
  }
  return undefined;
}
