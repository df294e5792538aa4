/**
 * The innermost pipeline step: choose a backend, send the request over its
 * undici Pool, resolve once the response head is in. Called again by a retry.
 */
import type { Dispatcher } from 'undici';
import { LbError } from '../errors.js';
import type { ProxyContext } from '../pipeline/context.js';
import { UpstreamExchange, type FailureListener } from './upstream-exchange.js';

export type Forwarder = (ctx: ProxyContext) => Promise<void>;

export function createForwarder(onFailure: FailureListener): Forwarder {
  return async function forward(ctx: ProxyContext): Promise<void> {
    if (ctx.backend !== undefined) ctx.markTried(ctx.backend.url);
    ctx.discardUpstream();
    ctx.response = undefined;
    const pool = ctx.pool;
    const member = pool.select(ctx, ctx);
    if (member === undefined) {
      throw new LbError('LB_ERR_NO_BACKEND', `No healthy backend is available in pool "${pool.name}"; try again shortly.`, {
        headers: { 'retry-after': '1' },
      });
    }
    ctx.attempt++;
    ctx.backend = member;
    const timeout = pool.config.responseTimeout;
    const options: Dispatcher.DispatchOptions = {
      path: ctx.path,
      method: ctx.method as Dispatcher.HttpMethod,
      headers: ctx.headers as Record<string, string | string[]>,
      body: ctx.body,
      headersTimeout: timeout,
      bodyTimeout: timeout,
    };
    const exchange = new UpstreamExchange(ctx, member.backend, options, onFailure);
    ctx.exchange = exchange;
    exchange.start();
    ctx.response = await exchange.head;
  };
}
