/**
 * Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection and must not
 * be forwarded, in either direction, together with every header the
 * Connection header nominates. `expect` is also ours: Node answers
 * `100-continue` to the client itself, and undici refuses to send it.
 */

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Removes hop-by-hop request headers in place (set to undefined: undici skips those, and no `delete` deopts the object). */
export function stripRequestHopByHop(headers: Record<string, string | string[] | undefined>): void {
  const connection = headers.connection;
  if (connection !== undefined) {
    const named = (Array.isArray(connection) ? connection.join(',') : connection).split(',');
    for (let i = 0; i < named.length; i++) {
      const name = named[i]!.trim().toLowerCase();
      // Never let a client strip what identifies the request to the backend.
      if (name !== '' && name !== 'host') headers[name] = undefined;
    }
    headers.connection = undefined;
  }
  if (headers['keep-alive'] !== undefined) headers['keep-alive'] = undefined;
  if (headers['proxy-connection'] !== undefined) headers['proxy-connection'] = undefined;
  if (headers.te !== undefined) headers.te = undefined;
  if (headers.trailer !== undefined) headers.trailer = undefined;
  if (headers['transfer-encoding'] !== undefined) headers['transfer-encoding'] = undefined;
  if (headers.upgrade !== undefined) headers.upgrade = undefined;
  if (headers.expect !== undefined) headers.expect = undefined;
}

/** Marks the lengths of hop-by-hop names, so most response header names skip the set lookup. */
const HOP_LENGTH = new Uint8Array(32);
for (const name of HOP_BY_HOP) HOP_LENGTH[name.length] = 1;

/**
 * A Connection value that nominates nothing but itself: "keep-alive" or
 * "close" (hop-by-hop already), any case. Nearly every response has one.
 */
function nominatesNothing(value: string): boolean {
  const length = value.length;
  if (length !== 10 && length !== 5) return false;
  const lower = value.toLowerCase();
  return lower === 'keep-alive' || lower === 'close';
}

/**
 * Raw response headers (name and value alternating, as the backend sent
 * them) → the header object written to the client and shown to plugins:
 * lower-case names, repeated names as arrays,
 * hop-by-hop headers and those the Connection header nominates removed. One
 * pass; this runs for every response.
 */
export function responseHeaders(raw: readonly string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  let nominated: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const length = name.length;
    if (length < 32 && HOP_LENGTH[length] === 1 && HOP_BY_HOP.has(name)) {
      if (name === 'connection' && !nominatesNothing(raw[i + 1]!)) {
        const value = raw[i + 1]!;
        nominated = nominated === undefined ? value : `${nominated},${value}`;
      }
      continue;
    }
    const value = raw[i + 1]!;
    const prev = out[name];
    if (prev === undefined) out[name] = value;
    // Found on the prototype ("constructor", "__proto__"): an own property, never a prototype write.
    else if (!Object.hasOwn(out, name)) Object.defineProperty(out, name, { value, enumerable: true, configurable: true, writable: true });
    else if (typeof prev === 'string') out[name] = [prev, value];
    else prev.push(value);
  }
  if (nominated !== undefined) {
    for (const token of nominated.split(',')) {
      const name = token.trim().toLowerCase();
      if (name !== '' && Object.hasOwn(out, name)) delete out[name];
    }
  }
  return out;
}
