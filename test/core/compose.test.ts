/**
 * compose(): which layer a failure is blamed on, and that a layer which only
 * returns next() adds nothing to the promise chain. Unit tests: no sockets.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LbError } from '../../src/errors.js';
import { compose, type NamedMiddleware } from '../../src/pipeline/compose.js';
import type { MiddlewareInstance, Next, RequestContext } from '../../src/plugin/types.js';

const ctx = {} as RequestContext;

function layer(name: string, handle: MiddlewareInstance['handle']): NamedMiddleware {
  return { name, instance: { handle } };
}

const passThrough = layer('pass', (_ctx: RequestContext, next: Next) => next());

test('a layer that returns next() hands back the inner promise itself: no extra promise per request', async () => {
  const terminalResult = Promise.resolve();
  const handler = compose([passThrough, passThrough], () => terminalResult);
  assert.equal(handler(ctx), terminalResult);
  await terminalResult;
});

test('a layer that awaits next() gets its own failures named, and passes inner LbErrors unchanged', async () => {
  const failsAfter = layer('after', async (_ctx: RequestContext, next: Next) => {
    await next();
    throw new Error('broke after next');
  });
  await assert.rejects(compose([passThrough, failsAfter], () => Promise.resolve())(ctx), (err: unknown) => {
    assert.ok(err instanceof LbError);
    assert.equal(err.code, 'LB_ERR_PLUGIN');
    assert.equal(err.message, 'plugin "after" failed: broke after next');
    return true;
  });
  const upstream = new LbError('LB_ERR_NO_BACKEND');
  await assert.rejects(compose([passThrough, failsAfter], () => Promise.reject(upstream))(ctx), (err: unknown) => err === upstream);
});

test('an inner layer failing is blamed on it, not on the pass-through layer around it', async () => {
  const inner = layer('inner', () => Promise.reject(new TypeError('inner broke')));
  await assert.rejects(compose([passThrough, inner], () => Promise.resolve())(ctx), /plugin "inner" failed: inner broke/);
});

test('a layer that throws synchronously, or returns a rejection of its own, is named', async () => {
  const throwsSync = layer('sync', () => {
    throw new Error('sync');
  });
  await assert.rejects(compose([throwsSync], () => Promise.resolve())(ctx), /plugin "sync" failed: sync/);
  // It called next() but returned another promise: that one is its own.
  const other = layer('other', (_ctx: RequestContext, next: Next) => {
    void next();
    return Promise.reject(new Error('own promise'));
  });
  await assert.rejects(compose([other], () => Promise.resolve())(ctx), /plugin "other" failed: own promise/);
});

test('a layer may call next() more than once (a retry); each call runs the inner layers again', async () => {
  let terminalCalls = 0;
  const twice = layer('twice', async (_ctx: RequestContext, next: Next) => {
    await next().catch(() => undefined);
    return next();
  });
  const handler = compose([twice, passThrough], () => (++terminalCalls === 1 ? Promise.reject(new LbError('LB_ERR_UPSTREAM_RESET')) : Promise.resolve()));
  await handler(ctx);
  assert.equal(terminalCalls, 2);
});
