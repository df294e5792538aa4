/**
 * A plugin's failures are contained: a middleware or strategy that throws
 * costs that request a 500 and one log line naming the plugin, and the proxy
 * keeps serving; a health check that throws marks its backend down with the
 * error's message as the reason; a middleware that hangs holds only its own
 * request, and a reload closes the old generation's plugins at most
 * `shutdown_grace` later.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startSwitchyard, type LogRecord } from '../../src/testing.js';
import { startBackend } from '../helpers/backends.js';
import { request } from '../helpers/http-client.js';

const FAILING_MJS = `
export default {
  kind: 'middleware',
  create() {
    return {
      handle(ctx, next) {
        if (ctx.path === '/sync') throw new Error('sync failure');
        if (ctx.path === '/async') return Promise.reject(new TypeError('async failure'));
        return next();
      },
    };
  },
};
`;

const FAILING_STRATEGY_MJS = `
export default {
  kind: 'strategy',
  create() {
    return { pick(candidates, ctx) { if (ctx.path === '/pick') throw new Error('no idea'); return candidates[0]; } };
  },
};
`;

const FAILING_CHECK_MJS = `
export default {
  kind: 'health',
  create() {
    return { async check() { throw new Error('disk almost full'); } };
  },
};
`;

const HANGING_MJS = `
globalThis.__lbHangClosed = 0;
export default {
  kind: 'middleware',
  create() {
    return {
      handle(ctx, next) { return ctx.path === '/hang' ? new Promise(() => {}) : next(); },
      close() { globalThis.__lbHangClosed++; },
    };
  },
};
`;

const UNWRITABLE_HEADER_MJS = `
export default {
  kind: 'middleware',
  create() {
    return {
      async handle(ctx, next) {
        if (ctx.path === '/local') return ctx.respond(200, 'local', { 'x-mark': 'a\\u0001b' });
        await next();
        if (ctx.path === '/backend') ctx.response.headers['x-mark'] = '\\u2713';
      },
    };
  },
};
`;

const UNSENDABLE_REQUEST_MJS = `
export default {
  kind: 'middleware',
  create() {
    return {
      handle(ctx, next) {
        if (ctx.path === '/bad') ctx.headers['x-mark'] = 'a\\u0001b';
        return next();
      },
    };
  },
};
`;

async function until(condition: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function pluginFailures(logs: LogRecord[]): LogRecord[] {
  return logs.filter((l) => l.code === 'LB_ERR_PLUGIN');
}

test('a middleware that throws (sync or async) gives that request a 500 and a log line naming it; others are served', async (t) => {
  const backend = await startBackend('b1');
  const sy = await startSwitchyard({
    captureLogs: true,
    files: { 'failing.mjs': FAILING_MJS },
    toml: `[server]\nlisten = "127.0.0.1:0"\n[pools.web]\nbackends = [{ url = "${backend.url}" }]\n\n[[pipeline]]\nplugin = "./failing.mjs"\n`,
  });
  t.after(async () => {
    await sy.close();
    await backend.close();
  });
  for (const [path, message] of [['/sync', 'sync failure'], ['/async', 'async failure']] as const) {
    const res = await request(`${sy.url}${path}`);
    assert.equal(res.status, 500);
    assert.doesNotMatch(res.body, /\n\s+at /, 'no stack trace reaches the client');
    const line = pluginFailures(sy.logs).at(-1);
    assert.ok(line, 'logged');
    assert.equal(line.msg, `plugin "./failing.mjs" failed: ${message}`);
    assert.equal(line.level, 40);
    assert.equal((await request(`${sy.url}/fine`)).body, 'b1', 'the proxy keeps serving');
  }
  assert.equal(pluginFailures(sy.logs).length, 2, 'one line per failed request');
});

test('a middleware that leaves a response header Node cannot write gets that request a 500, logged; the process keeps serving', async (t) => {
  const backend = await startBackend('b1');
  const sy = await startSwitchyard({
    captureLogs: true,
    files: { 'unwritable.mjs': UNWRITABLE_HEADER_MJS },
    toml: `[server]\nlisten = "127.0.0.1:0"\n[pools.web]\nbackends = [{ url = "${backend.url}" }]\n\n[[pipeline]]\nplugin = "./unwritable.mjs"\n`,
  });
  t.after(async () => {
    await sy.close();
    await backend.close();
  });
  for (const path of ['/backend', '/local']) {
    const res = await request(`${sy.url}${path}`);
    assert.equal(res.status, 500, path);
    assert.match(pluginFailures(sy.logs).at(-1)?.msg ?? '', /response header .*cannot be written/);
    assert.equal((await request(`${sy.url}/fine`)).body, 'b1', 'the proxy keeps serving');
  }
});

test('a middleware that leaves a request header undici cannot send gets a 500, logged; the backend is not blamed for it', async (t) => {
  const backend = await startBackend('b1');
  const sy = await startSwitchyard({
    captureLogs: true,
    files: { 'unsendable.mjs': UNSENDABLE_REQUEST_MJS },
    toml: `[server]\nlisten = "127.0.0.1:0"\n[pools.web]\nbackends = [{ url = "${backend.url}" }]\n\n[[pipeline]]\nplugin = "./unsendable.mjs"\n`,
  });
  t.after(async () => {
    await sy.close();
    await backend.close();
  });
  // More than passive detection's threshold: the backend never saw these requests.
  for (let i = 0; i < 5; i++) {
    const res = await request(`${sy.url}/bad`);
    assert.equal(res.status, 500, res.body);
  }
  assert.match(pluginFailures(sy.logs).at(-1)?.msg ?? '', /request .*cannot be sent/);
  const state = sy.lb.registry.get(backend.url)!;
  assert.notEqual(state.state, 'down', `backend taken out of rotation: ${state.reason}`);
  assert.equal(state.failures, 0);
  assert.equal((await request(`${sy.url}/fine`)).body, 'b1', 'the backend keeps serving');
});

test('a strategy that throws gives that request a 500, logged with the strategy and pool', async (t) => {
  const backend = await startBackend('b1');
  const sy = await startSwitchyard({
    captureLogs: true,
    files: { 'failing-strategy.mjs': FAILING_STRATEGY_MJS },
    toml: `[server]\nlisten = "127.0.0.1:0"\n[pools.web]\nstrategy = "./failing-strategy.mjs"\nbackends = [{ url = "${backend.url}" }]\n`,
  });
  t.after(async () => {
    await sy.close();
    await backend.close();
  });
  assert.equal((await request(`${sy.url}/pick`)).status, 500);
  assert.equal(pluginFailures(sy.logs).at(-1)?.msg, 'strategy "./failing-strategy.mjs" of pool "web" failed: no idea');
  assert.equal((await request(`${sy.url}/other`)).body, 'b1');
});

test('a health check that throws marks the backend down, its message the reason', async (t) => {
  const backend = await startBackend('b1');
  const sy = await startSwitchyard({
    files: { 'failing-check.mjs': FAILING_CHECK_MJS },
    toml: `[server]\nlisten = "127.0.0.1:0"\n[pools.web]\nbackends = [{ url = "${backend.url}" }]\nhealth = { checker = "./failing-check.mjs", interval = "100ms", timeout = "100ms", unhealthy_after = 1 }\n`,
  });
  t.after(async () => {
    await sy.close();
    await backend.close();
  });
  const state = sy.lb.registry.get(backend.url)!;
  await until(() => state.state === 'down', 'the backend to go down');
  assert.equal(state.reason, 'disk almost full');
  assert.equal((await request(sy.url)).status, 503, 'no healthy backend left');
});

test('a hanging middleware holds only its request; a reload closes its generation after shutdown_grace, logged', async (t) => {
  const backend = await startBackend('b1');
  const toml = (grace: string) =>
    `[server]\nlisten = "127.0.0.1:0"\nshutdown_grace = "${grace}"\n[pools.web]\nbackends = [{ url = "${backend.url}" }]\n\n[[pipeline]]\nplugin = "./hanging.mjs"\n`;
  const sy = await startSwitchyard({ captureLogs: true, files: { 'hanging.mjs': HANGING_MJS }, toml: toml('300ms') });
  const hung = http.get(`${sy.url}/hang`);
  hung.on('error', () => {}); // cut when the test ends
  t.after(async () => {
    hung.destroy();
    await sy.close();
    await backend.close();
  });
  const first = sy.lb.generation;
  await until(() => first.inflight === 1, 'the hanging request to arrive');
  assert.equal((await request(sy.url)).body, 'b1', 'other requests are served meanwhile');

  await sy.reload(toml('301ms'));
  const closed = (globalThis as { __lbHangClosed?: number }).__lbHangClosed;
  assert.equal(closed, 0, 'not closed while its request is in flight');
  await until(() => first.closed, 'the old generation to be closed', 2000);
  assert.equal((globalThis as { __lbHangClosed?: number }).__lbHangClosed, 1);
  const warning = sy.logs.find((l) => l.generation === first.id && l.level === 40);
  assert.match(String(warning?.msg), /generation 1 still has 1 request\(s\) in flight 300ms after it was replaced; closing its plugins now/);
  assert.equal((await request(sy.url)).body, 'b1');
});
