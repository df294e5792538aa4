/**
 * X-Forwarded-For/-Host/-Proto, and `Forwarded` (RFC 7239) when
 * `forwarded_header` is on. From an untrusted peer they are replaced (a
 * client cannot claim to be someone else); from a `trusted_proxies` peer
 * they are extended, and the client address is the nearest untrusted hop.
 *
 * `Forwarded` is opt-in, as in nginx and HAProxy: backends read
 * X-Forwarded-*, and one more header on every request is measurable on the
 * hot path. With it off, an untrusted client's `Forwarded` is still removed.
 *
 * CGI, WSGI, PHP and Rack backends read `_` in a header name as `-`: they
 * would merge a client's `X_Forwarded_For` with the real X-Forwarded-For,
 * the forged value first. Such spellings are dropped, from every peer
 * (trusted proxies write hyphens), by the request guard's one pass over the
 * raw headers (src/server/request-guard.ts), which asks
 * `isForwardingHeaderAlias` about each name.
 */
import { BlockList, isIP, isIPv6 } from 'node:net';

/**
 * True for a header name (any case) that is X-Forwarded-For, -Host or
 * -Proto once each `_` in it is read as `-`, and has at least one `_`. Most
 * names differ in length or at their first character, so this is a few
 * comparisons and allocates nothing.
 */
export function isForwardingHeaderAlias(name: string): boolean {
  const length = name.length;
  const target = length === 15 ? 'x-forwarded-for' : length === 16 ? 'x-forwarded-host' : length === 17 ? 'x-forwarded-proto' : undefined;
  if (target === undefined) return false;
  let underscore = false;
  for (let i = 0; i < target.length; i++) {
    let c = name.charCodeAt(i);
    if (c >= 65 && c <= 90) c += 32;
    else if (c === 95 /* _ */) {
      c = 45; /* - */
      underscore = true;
    }
    if (c !== target.charCodeAt(i)) return false;
  }
  return underscore;
}

/** RFC 7230 tchar: a Forwarded value made only of these needs no quotes. */
const TOKEN_CHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TOKEN_CHAR[c.charCodeAt(0)] = 1;

function isToken(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c > 127 || TOKEN_CHAR[c] !== 1) return false;
  }
  return value.length > 0;
}

/** A Forwarded parameter value: a token as is, anything else quoted (Host was validated, so no `"` or `\` in it). */
function forwardedValue(value: string): string {
  return isToken(value) ? value : `"${value}"`;
}

/** `for=` node: IPv4 as is, IPv6 as `"[…]"` (RFC 7239 §6). A peer address from the socket has a ':' only when it is IPv6. */
function forwardedNode(ip: string): string {
  return ip.includes(':') ? `"[${ip}]"` : forwardedValue(ip);
}

/** One Forwarded element describing the hop from `peer` to us. */
export function forwardedElement(peer: string, host: string | undefined, proto: 'http' | 'https'): string {
  const node = peer === '' ? 'unknown' : forwardedNode(peer);
  return host === undefined || host === '' ? `for=${node};proto=${proto}` : `for=${node};host=${forwardedValue(host)};proto=${proto}`;
}

export class ForwardedHeaders {
  readonly #trusted: BlockList | undefined;
  readonly #sendForwarded: boolean;

  constructor(trustedProxies: readonly string[], sendForwarded = false) {
    this.#sendForwarded = sendForwarded;
    if (trustedProxies.length === 0) return;
    const list = new BlockList();
    for (const entry of trustedProxies) {
      const [address, prefix] = entry.split('/') as [string, string | undefined];
      const type = isIPv6(address) ? 'ipv6' : 'ipv4';
      if (prefix === undefined) list.addAddress(address, type);
      else list.addSubnet(address, Number(prefix), type);
    }
    this.#trusted = list;
  }

  isTrusted(ip: string): boolean {
    if (this.#trusted === undefined) return false;
    const version = isIP(ip);
    return version !== 0 && this.#trusted.check(ip, version === 6 ? 'ipv6' : 'ipv4');
  }

  /**
   * Sets the X-Forwarded-* and Forwarded headers in place and returns the
   * client address plugins should see.
   */
  apply(
    headers: Record<string, string | string[] | undefined>,
    peer: string,
    host: string | undefined,
    proto: 'http' | 'https',
  ): string {
    const trusted = this.#trusted !== undefined && this.isTrusted(peer);
    const forwarded = headers.forwarded;
    if (this.#sendForwarded) {
      const element = forwardedElement(peer, host, proto);
      headers.forwarded =
        trusted && forwarded !== undefined ? `${Array.isArray(forwarded) ? forwarded.join(', ') : forwarded}, ${element}` : element;
    } else if (forwarded !== undefined && !trusted) {
      headers.forwarded = undefined;
    }

    const incoming = headers['x-forwarded-for'];
    if (incoming !== undefined && trusted) {
      const chain = Array.isArray(incoming) ? incoming.join(', ') : incoming;
      headers['x-forwarded-for'] = `${chain}, ${peer}`;
      if (headers['x-forwarded-host'] === undefined && host !== undefined) headers['x-forwarded-host'] = host;
      if (headers['x-forwarded-proto'] === undefined) headers['x-forwarded-proto'] = proto;
      return this.#nearestUntrusted(chain) ?? peer;
    }
    headers['x-forwarded-for'] = peer;
    if (host !== undefined) headers['x-forwarded-host'] = host;
    else if (headers['x-forwarded-host'] !== undefined) headers['x-forwarded-host'] = undefined;
    headers['x-forwarded-proto'] = proto;
    return peer;
  }

  #nearestUntrusted(chain: string): string | undefined {
    const hops = chain.split(',');
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i]!.trim();
      // A hop that is not an address was forged or mangled: trust nothing past it.
      if (isIP(hop) === 0) return undefined;
      if (!this.isTrusted(hop)) return hop;
    }
    return undefined;
  }
}
