/**
 * X-Forwarded-For/-Host/-Proto. From an untrusted peer they are replaced
 * (a client cannot claim to be someone else); from a `trusted_proxies` peer
 * they are extended, and the client address is the nearest untrusted hop.
 */
import { BlockList, isIP, isIPv6 } from 'node:net';

export class ForwardedHeaders {
  readonly #trusted: BlockList | undefined;

  constructor(trustedProxies: readonly string[]) {
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
   * Sets the X-Forwarded-* headers in place and returns the client address
   * plugins should see.
   */
  apply(
    headers: Record<string, string | string[] | undefined>,
    peer: string,
    host: string | undefined,
    proto: 'http' | 'https',
  ): string {
    const incoming = headers['x-forwarded-for'];
    if (incoming !== undefined && this.isTrusted(peer)) {
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
