/**
 * Which `[server]` changes a running listener can take as they are, and
 * which need a new listener (a rebind): the address, and switching TLS on
 * or off. Everything else is set on the live server and applies to new
 * connections (header limits) or at once (timeouts, certificates).
 */
import { readFileSync } from 'node:fs';
import type https from 'node:https';
import type { ListenAddress, ServerConfig } from '../config/types.js';
import type { TrafficServer } from './traffic-server.js';

/** Same address? Compared as configured, so "127.0.0.1:0" stays bound to the port it got. */
export function sameListen(a: ListenAddress | undefined, b: ListenAddress | undefined): boolean {
  return a?.host === b?.host && a?.port === b?.port;
}

export function listenerNeedsRebind(before: ServerConfig, after: ServerConfig): boolean {
  return (
    !sameListen(before.listen, after.listen) ||
    (before.tls === undefined) !== (after.tls === undefined)
  );
}

/**
 * Applies `config` to a listener bound to the same address. Certificates
 * are read again, so a reload (SIGHUP) picks up renewed ones. Throws when
 * they cannot be read, before anything is changed.
 */
export function applyListenerSettings(traffic: TrafficServer, config: ServerConfig): void {
  const secure =
    config.tls === undefined ? undefined : { cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) };
  const server = traffic.server as https.Server & { maxHeaderSize?: number };
  if (secure !== undefined) server.setSecureContext(secure);
  // Node reads these from the server object: per new connection (maxHeaderSize) or on each check.
  server.maxHeaderSize = config.maxHeaderSize;
  server.headersTimeout = config.headersTimeout;
  server.keepAliveTimeout = config.idleTimeout;
}
