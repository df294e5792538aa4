/**
 * Addresses in lb.toml: where Switchyard listens ("127.0.0.1:8080",
 * "[::1]:8080", ":8080") and the origins of backends
 * ("http://127.0.0.1:8001"). The schema's patterns check their shape; the
 * functions here check what a pattern cannot (a port past 65535, an IPv4
 * address with a 999 in it), so that such an address is a config error at
 * its line rather than a failure of `lb run` or of every request.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { ListenAddress } from './types.js';

/** Shape of a listen address; the rest is checked by listenAddressProblem. */
export const LISTEN_PATTERN = '^(\\[[0-9a-fA-F:.]+\\]|[A-Za-z0-9_.-]*):\\d{1,5}$';
/** Shape of a backend origin; the rest is checked by backendUrlProblem. */
export const BACKEND_URL_PATTERN = '^https?://[^/?#\\s]+/?$';

const MAX_PORT = 65_535;
const LISTEN = new RegExp(LISTEN_PATTERN);
const BACKEND_URL = new RegExp(BACKEND_URL_PATTERN);
/** A DNS label; `_` is allowed because container and service-discovery names use it. */
const HOST_LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;
const DOTTED_NUMBERS = /^[0-9.]+$/;

/** "127.0.0.1:8080" | "[::1]:8080" | ":8080" → host and port ("::", every address, for ":8080"). */
export function parseListen(text: string): ListenAddress {
  const colon = text.lastIndexOf(':');
  let host = text.slice(0, colon);
  if (host.startsWith('[')) host = host.slice(1, -1);
  return { host: host === '' ? '::' : host, port: Number(text.slice(colon + 1)) };
}

/**
 * Why `host` (an IPv4 address, a bracketed IPv6 address or a host name) can
 * be neither bound nor dialled; undefined when it looks usable.
 */
export function hostProblem(host: string): string | undefined {
  if (host.startsWith('[')) {
    return host.endsWith(']') && isIPv6(host.slice(1, -1))
      ? undefined
      : `"${host}" is not an IPv6 address: write it in brackets, e.g. "[::1]"`;
  }
  // All digits and dots can only be meant as IPv4 (resolvers would read "10.1" as 10.0.0.1).
  if (DOTTED_NUMBERS.test(host)) {
    return isIPv4(host)
      ? undefined
      : `"${host}" is not an IPv4 address: write four numbers from 0 to 255 without leading zeros, e.g. "127.0.0.1"`;
  }
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  if (name.length === 0 || name.length > 253 || !name.split('.').every((label) => HOST_LABEL.test(label))) {
    return `"${host}" is not a valid host name: use letters, digits, "-" and "." (e.g. "lb.internal"), or an IP address`;
  }
  return undefined;
}

function portProblem(port: number, zero: 'any free port' | 'refused'): string | undefined {
  if (port === 0 && zero === 'refused') return 'port 0 cannot be connected to: write the port the backend listens on (1-65535)';
  if (port > MAX_PORT) {
    return `port ${port} is out of range: write a port from 1 to ${MAX_PORT}${zero === 'any free port' ? ' (or 0 for any free port)' : ''}`;
  }
  return undefined;
}

/**
 * Why a listen address that matches LISTEN_PATTERN cannot be bound;
 * undefined when it can (or when it does not match: the pattern says so).
 */
export function listenAddressProblem(text: string): string | undefined {
  if (!LISTEN.test(text)) return undefined;
  const colon = text.lastIndexOf(':');
  const host = text.slice(0, colon);
  return portProblem(Number(text.slice(colon + 1)), 'any free port') ?? (host === '' ? undefined : hostProblem(host));
}

/**
 * Why a backend origin that matches BACKEND_URL_PATTERN cannot be dialled;
 * undefined when it can (or when it does not match: the pattern says so).
 */
export function backendUrlProblem(text: string): string | undefined {
  if (!BACKEND_URL.test(text)) return undefined;
  const authority = text.slice(text.indexOf('://') + 3).replace(/\/$/, '');
  if (authority.includes('@')) return 'must not carry a user name or password: write only scheme, host and port';
  const bracketEnd = authority.startsWith('[') ? authority.indexOf(']') + 1 : 0;
  const colon = authority.indexOf(':', bracketEnd);
  const host = colon === -1 ? authority : authority.slice(0, colon);
  const port = colon === -1 ? undefined : authority.slice(colon + 1);
  if (host === '') return 'names no host: write e.g. "http://127.0.0.1:8001"';
  if (port !== undefined && !/^\d{1,5}$/.test(port)) return `"${port}" is not a port: write a number from 1 to ${MAX_PORT}`;
  const problem = (port === undefined ? undefined : portProblem(Number(port), 'refused')) ?? hostProblem(host);
  if (problem !== undefined) return problem;
  try {
    new URL(text);
  } catch {
    return 'is not a URL that can be connected to: write scheme, host and port, e.g. "http://127.0.0.1:8001"';
  }
  return undefined;
}

/** Whether two listeners would fight over one port (a port of 0 is a fresh one each time). */
export function listenersCollide(a: ListenAddress, b: ListenAddress): boolean {
  if (a.port !== b.port || a.port === 0) return false;
  if (a.host === b.host) return true;
  // "::" takes every IPv4 and IPv6 address (dual stack); "0.0.0.0" every IPv4 one.
  const every = (x: ListenAddress, other: ListenAddress) =>
    x.host === '::' || (x.host === '0.0.0.0' && isIPv4(other.host));
  return every(a, b) || every(b, a);
}
