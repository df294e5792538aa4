/**
 * Which `[server]` changes a running listener can take as they are, and
 * which need a new listener (a rebind): the address, and switching TLS on
 * or off. Everything else is set on the live server and applies to new
 * connections (header limits, the client connection limit, the TLS
 * handshake timeout) or at once (timeouts, certificates). A new listener
 * (a rebind) is created with all of them.
 */
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import type https from 'node:https';
import type { ListenAddress, ServerConfig } from '../config/types.js';
import type { TrafficServer } from './traffic-server.js';
import type { ClientConnectionLimit } from './client-connection-limit.js';

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
 * Applies `config` — and `clientLimit`, what it makes of server.max_connections
 * in this process — to a listener bound to the same address. Certificates
 * are read again, so a reload (SIGHUP) picks up renewed ones. Throws when
 * they cannot be read, before anything is changed.
 */
export function applyListenerSettings(traffic: TrafficServer, config: ServerConfig, clientLimit: ClientConnectionLimit): void {
  const secure = config.tls === undefined ? undefined : readListenerCertificate(config.tls);
  const server = traffic.server as https.Server & { maxHeaderSize?: number };
  if (secure !== undefined) {
    server.setSecureContext(secure);
    setHandshakeTimeout(server, config.headersTimeout);
  }
  // Node reads these from the server object: per new connection (maxHeaderSize) or on each check.
  server.maxHeaderSize = config.maxHeaderSize;
  server.headersTimeout = config.headersTimeout;
  server.keepAliveTimeout = config.idleTimeout;
  traffic.limitClientConnections(clientLimit);
}

/**
 * The PEM certificate chain and key `[server.tls]` names, read and checked
 * to make a TLS context together — a key that is not the certificate's own
 * included — so that a start fails, and a reload is refused, on what the
 * listener would otherwise fail on later (a reload: after it was reported
 * applied, with the old certificate still served).
 */
export function readListenerCertificate(tls: NonNullable<ServerConfig['tls']>): { cert: Buffer; key: Buffer } {
  const files = { cert: readFileSync(tls.cert), key: readFileSync(tls.key) };
  try {
    createSecureContext(files);
  } catch (err) {
    throw new Error(
      `server.tls: the certificate ${tls.cert} and key ${tls.key} cannot be used (${(err as Error).message}): give a PEM certificate chain and its own private key`,
      { cause: err },
    );
  }
  return files;
}

/**
 * A TLS handshake must finish within `headers_timeout` too (traffic-server.ts
 * passes it as `handshakeTimeout`). Node reads that option once, into a
 * symbol-keyed field of the server that each new connection takes its
 * timeout from, and has no setter: the field is found by its description.
 * Should a Node version name it otherwise, the value set at start stays.
 */
function setHandshakeTimeout(server: https.Server, ms: number): void {
  const field = Object.getOwnPropertySymbols(server).find((symbol) => symbol.description === 'handshake-timeout');
  if (field !== undefined) (server as unknown as Record<symbol, number>)[field] = ms;
}
