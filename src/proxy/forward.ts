/**
 * The innermost pipeline step: choose a backend, send the request over its
 * client, resolve once the response head is in. Called again by a retry.
 */
import type { BackendRequestOptions } from '../client/exchange-handler.js';
import { LbError } from '../errors.js';
import type { ProxyContext } from '../pipeline/context.js';
import { hasQueueRoom } from '../pool/connection-limit.js';
import { UpgradeExchange } from './upgrade.js';
import { UpstreamExchange, type FailureListener } from './upstream-exchange.js';

/** The backend has max_connections busy and max_queue waiting (the message names no backend: clients read it). */
const QUEUE_FULL = new LbError('LB_ERR_UPSTREAM_BUSY', undefined, { headers: { 'retry-after': '1' } });
const CLIENT_GONE = new LbError('LB_ERR_CLIENT_GONE');

export type Forwarder = (ctx: ProxyContext) => Promise<void>;

/** For an Upgrade request, read by undici's Request (lib/core/request.js). */
interface ServerNameOption {
  readonly servername: string;
}

/**
 * Not async: it returns the exchange's own `head` promise (the exchange sets
 * ctx.response), so a request costs no extra promise and no extra microtask
 * here. Never throws: a failure (a third-party strategy throwing included)
 * is a rejected promise, as it was when this was an async function.
 */
export function createForwarder(onFailure: FailureListener): Forwarder {
  return function forward(ctx: ProxyContext): Promise<void> {
    try {
      return startAttempt(ctx, onFailure);
    } catch (err) {
      return Promise.reject(err);
    }
  };
}

function startAttempt(ctx: ProxyContext, onFailure: FailureListener): Promise<void> {
  if (ctx.backend !== undefined) ctx.markTried(ctx.backend.url);
  ctx.discardUpstream();
  ctx.response = undefined;
  // The client closed its connection (during a retry's backoff, say): no
  // backend may act on a request nobody waits for — a DELETE sent again
  // after the client gave up would still delete.
  if (ctx.req.socket.destroyed) throw CLIENT_GONE;
  const pool = ctx.pool;
  const member = pool.select(ctx, ctx);
  if (member === undefined) {
    throw new LbError('LB_ERR_NO_BACKEND', `No healthy backend is available in pool "${pool.name}"; try again shortly.`, {
      headers: { 'retry-after': '1' },
    });
  }
  ctx.attempt++;
  ctx.backend = member;
  const config = pool.config;
  if (!hasQueueRoom(member.backend, config.maxConnections, config.maxQueue)) throw QUEUE_FULL;
  const timeout = config.responseTimeout;
  const options: BackendRequestOptions & ServerNameOption = {
    path: ctx.path,
    method: ctx.method,
    headers: ctx.headers,
    body: ctx.body,
    headersTimeout: timeout,
    bodyTimeout: timeout,
    upgrade: ctx.upgrade,
    // The same for every request to this backend, or undici reconnects whenever the client Host changes (backend-connector.ts).
    servername: member.backend.target.hostname,
  };
  const exchange =
    ctx.upgrade === undefined
      ? new UpstreamExchange(ctx, member.backend, options, onFailure)
      : new UpgradeExchange(ctx, member.backend, options, onFailure);
  ctx.exchange = exchange;
  exchange.start();
  return exchange.head;
}
