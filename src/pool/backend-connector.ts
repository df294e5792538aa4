/**
 * Opens a backend's connections (for its BackendClient, and the undici Pool
 * that carries its Upgrade requests), with a connect timeout
 * that fires when it says, and TLS to an https backend in the backend's own
 * name.
 *
 * undici times connects with its coarse "fast timers", which tick every
 * ~500 ms: a `connect_timeout` of 100 ms would fire after 500–1000 ms. So
 * the connector undici would build is built here with its timer off, and a
 * plain Node timer per connection attempt does the timing. One timer and one
 * closure per new connection, none per request: pooled connections are
 * reused. Each connected socket is also watched (src/proxy/backend-socket.ts).
 *
 * The TLS server name (SNI, and the name the certificate is verified
 * against) is the backend URL's host, as nginx's `proxy_ssl_name` and
 * HAProxy's `verifyhost` default to: undici would take it from the request's
 * Host header, which is the client's (passed through), so any Host the
 * backend's certificate does not list would fail with a certificate error.
 * The request's `servername` is only undici's key for reusing connections
 * (forward.ts sets it to the backend's host); here it is dropped, and
 * undici's connector derives the name from the backend URL (none for an IP
 * address, whose certificate is then checked against the IP).
 */
import type { Socket } from 'node:net';
import type { buildConnector as BuildConnector } from 'undici';
import { watchBackendSocket } from '../proxy/backend-socket.js';
import { buildConnector, ConnectTimeoutError } from '../proxy/undici-parts.js';

/** undici's connector, failing a connection not accepted (TLS: not set up) within `timeoutMs`. */
export function createBackendConnector(timeoutMs: number): BuildConnector.connector {
  // timeout 0 turns undici's own connect timer off; everything else is undici's default.
  const connect = buildConnector({ timeout: 0 });
  return function connectWithTimeout(options, callback) {
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const socket = connect({ ...options, servername: undefined }, (...result) => {
      settled = true;
      if (timer !== undefined) clearTimeout(timer);
      if (result[1] != null) watchBackendSocket(result[1] as Socket);
      callback(...result);
    }) as unknown as Socket;
    if (!settled && timeoutMs > 0) timer = setTimeout(expire, timeoutMs, socket, options, timeoutMs).unref();
  };
}

/** Fails the attempt as undici would: its error code maps to LB_ERR_UPSTREAM_CONNECT_TIMEOUT. */
function expire(socket: Socket, options: BuildConnector.Options, timeoutMs: number): void {
  // The connector reports this through its 'error' listener, to the callback above.
  socket.destroy(new ConnectTimeoutError(`Connect Timeout Error (attempted address: ${options.hostname}:${options.port}, timeout: ${timeoutMs}ms)`));
}
