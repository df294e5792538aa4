/**
 * The pieces of undici the proxy uses — the connector that opens backend
 * connections, the error a connect timeout raises, and, for Upgrade
 * requests only, its connection Pool — loaded on their own. The package's
 * index loads all of undici (fetch, WebSocket, caches, EventSource, mocks…):
 * 5–6 MB more RSS in a running proxy, none of it used here; the Pool is
 * loaded on the first Upgrade request.
 *
 * undici has no `exports` map, so these paths are public to Node, but they
 * are not undici's documented API: test/proxy/undici-parts.test.ts checks
 * they are the very objects the index exports, so an undici upgrade that
 * moves them fails the tests instead of the proxy.
 */
import { createRequire } from 'node:module';
import type { Pool as UndiciPool, buildConnector as undiciBuildConnector, errors } from 'undici';

const require = createRequire(import.meta.url);

export type Pool = UndiciPool;

/** undici's Pool class, loaded on first use. */
export function loadPool(): typeof UndiciPool {
  return require('undici/lib/dispatcher/pool.js') as typeof UndiciPool;
}

/** undici's own connector (what a Pool builds from its `connect` options), for wrapping. */
export const buildConnector = require('undici/lib/core/connect.js') as typeof undiciBuildConnector;

/** The error undici fails a request with when its connection was not accepted in time (code UND_ERR_CONNECT_TIMEOUT). */
export const ConnectTimeoutError = (require('undici/lib/core/errors.js') as typeof errors).ConnectTimeoutError;
