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

/** Lengths of the hop-by-hop names, to skip lower-casing most response header names. */
const HOP_LENGTHS = new Set([...HOP_BY_HOP].map((h) => h.length));

/**
 * Raw response headers from undici (Buffer pairs) → a flat [name, value, …]
 * array for `res.writeHead`, without hop-by-hop headers.
 */
export function responseHeaderList(raw: readonly Buffer[]): string[] {
  let nominated: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 10 && name.toString('latin1').toLowerCase() === 'connection') {
      nominated ??= new Set();
      for (const token of raw[i + 1]!.toString('latin1').split(',')) nominated.add(token.trim().toLowerCase());
    }
  }
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1');
    if (HOP_LENGTHS.has(name.length) || nominated !== undefined) {
      const lower = name.toLowerCase();
      if (HOP_BY_HOP.has(lower) || (nominated !== undefined && nominated.has(lower))) continue;
    }
    out.push(name, raw[i + 1]!.toString('latin1'));
  }
  return out;
}

/** Flat header list → object with lower-case names (repeated names become arrays). */
export function headerObject(list: readonly string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < list.length; i += 2) {
    const name = list[i]!.toLowerCase();
    const value = list[i + 1]!;
    const prev = out[name];
    if (prev === undefined) out[name] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else out[name] = [prev, value];
  }
  return out;
}
