/**
 * What a reload does to what was running: requests in flight finish on the
 * generation they started on, whose plugins are closed once it has drained;
 * unchanged plugins inherit their predecessor's state; backends whose URL
 * survives keep their state; a build that fails closes what it created and
 * leaves the running generation as it was.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/config/issues.js';
import { startSwitchyard } from '../../src/testing.js';
import { startBackend, type TestBackend } from '../helpers/backends.js';
import { request } from '../helpers/http-client.js';

type Recorder = { events: string[] };
const recorder = ((globalThis as { __lbRecorder?: Recorder }).__lbRecorder ??= { events: [] });

/** A third-party middleware that records its lifecycle and tags responses with its config. */
const RECORDER_MJS = `
const log = globalThis.__lbRecorder.events;
export default {
  kind: 'middleware',
  schema: { type: 'object', required: ['tag'], properties: { tag: { type: 'string' } } },
  create(config, api) {
    log.push('create ' + config.tag + ' inherited=' + String(api.inherited));
    return {
      async handle(ctx, next) { await next(); ctx.response.headers['x-tag'] = config.tag; },
      handOver() { log.push('handOver ' + config.tag); return 'state-of-' + config.tag; },
      close() { log.push('close ' + config.tag); },
    };
  },
};
`;
const BOOM_MJS = `export default { kind: 'middleware', create() { throw new Error('cannot start'); } };`;

function toml(backends: readonly TestBackend[], tags: readonly string[], extra = ''): string {
  return `[server]
listen = "127.0.0.1:0"
shutdown_grace = "5s"

[pools.web]
backends = [${backends.map((b) => `{ url = "${b.url}" }`).join(', ')}]
${tags.map((tag) => `\n[[pipeline]]\nplugin = "./recorder.mjs"\ntag = "${tag}"\n`).join('')}${extra}`;
}

async function until(condition: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}; events: ${recorder.events.join(' | ')}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

test('a slow request spans a reload: it finishes on its generation, whose plugins close only after it', async (t) => {
  recorder.events.length = 0;
  let releaseSlow: (() => void) | undefined;
  const b1 = await startBackend('b1', (req, res) => {
    if (req.url === '/slow') releaseSlow = () => res.end('slow');
    else res.end('b1');
  });
  const b2 = await startBackend('b2');
  const sy = await startSwitchyard({ toml: toml([b1], ['one']), files: { 'recorder.mjs': RECORDER_MJS, 'boom.mjs': BOOM_MJS } });
  t.after(async () => {
    releaseSlow?.();
    await sy.close();
    await Promise.all([b1.close(), b2.close()]);
  });
  const first = sy.lb.generation;

  const slow = request(`${sy.url}/slow`);
  await until(() => releaseSlow !== undefined, 'the slow request to reach the backend');
  await sy.reload(toml([b1], ['two']));
  assert.deepEqual(recorder.events, ['create one inherited=undefined', 'create two inherited=undefined']);
  const res = await request(sy.url);
  assert.equal(res.headers['x-tag'], 'two', 'new requests run on the new generation');
  assert.equal(first.inflight, 1);
  assert.equal(first.closed, false, 'not closed while a request is in flight on it');
  assert.ok(!recorder.events.includes('close one'));

  releaseSlow!();
  const slowRes = await slow;
  assert.equal(slowRes.body, 'slow');
  assert.equal(slowRes.headers['x-tag'], 'one', 'the request in flight finished on the generation it started on');
  await until(() => recorder.events.includes('close one'), 'close() of the drained generation');
  assert.equal(first.closed, true);
  assert.equal(recorder.events.filter((e) => e.startsWith('close')).length, 1, 'closed once, and only the old instance');

  // Same plugin config: the new instance inherits what the old one handed over.
  recorder.events.length = 0;
  await sy.reload(toml([b1, b2], ['two']));
  assert.deepEqual(recorder.events.slice(0, 2), ['handOver two', 'create two inherited=state-of-two']);
  await until(() => recorder.events.includes('close two'), 'the old instance to close');
});

test('backends whose URL survives keep their state; a removed one is released once drained', async (t) => {
  const [b1, b2] = [await startBackend('b1'), await startBackend('b2')];
  const sy = await startSwitchyard({ toml: toml([b1, b2], []) });
  t.after(async () => {
    await sy.close();
    await Promise.all([b1.close(), b2.close()]);
  });
  for (let i = 0; i < 10; i++) assert.equal((await request(sy.url)).status, 200);
  const survivor = sy.lb.registry.get(b1.url)!;
  sy.lb.registry.setState(survivor, 'up', 'checked by the test');
  const client = survivor.client;
  assert.equal(survivor.requests, 5);

  const old = sy.lb.generation;
  await sy.reload(toml([b1], []));
  assert.equal(sy.lb.registry.get(b1.url), survivor, 'the same Backend object');
  assert.equal(survivor.client, client, 'the same connection pool');
  assert.equal(survivor.state, 'up');
  assert.equal(survivor.requests, 5, 'counters carry on');
  await until(() => old.closed, 'the old generation to retire');
  assert.equal(sy.lb.registry.get(b2.url), undefined, 'the removed backend is released');
  for (let i = 0; i < 4; i++) assert.equal((await request(sy.url)).body, 'b1');
  assert.equal(survivor.requests, 9);
});

test('a failing build closes what it created, leaves the running generation serving, and reports the plugin at its line', async (t) => {
  recorder.events.length = 0;
  const b1 = await startBackend('b1');
  const sy = await startSwitchyard({ toml: toml([b1], ['one']), files: { 'recorder.mjs': RECORDER_MJS, 'boom.mjs': BOOM_MJS } });
  t.after(async () => {
    await sy.close();
    await b1.close();
  });
  const running = sy.lb.generation;
  const bad = toml([b1], ['one', 'three'], '\n[[pipeline]]\nplugin = "./boom.mjs"\n');
  await assert.rejects(sy.reload(bad), (err: unknown) => {
    assert.ok(err instanceof ConfigError, String(err));
    const line = bad.split('\n').indexOf('plugin = "./boom.mjs"') + 1;
    assert.equal(err.issues[0]!.line, line);
    assert.equal(err.issues[0]!.keyPath, 'pipeline[2].plugin');
    assert.match(err.issues[0]!.message, /plugin "\.\/boom\.mjs" failed to start: cannot start/);
    return true;
  });
  assert.equal(sy.lb.generation, running, 'the running generation is untouched');
  assert.equal(running.closed, false);
  // The instances the failed build created are closed; the running one is not.
  assert.deepEqual(recorder.events, [
    'create one inherited=undefined',
    'handOver one',
    'create one inherited=state-of-one',
    'create three inherited=undefined',
    'close one',
    'close three',
  ]);
  assert.equal((await request(sy.url)).headers['x-tag'], 'one');
  assert.equal(sy.lb.reloads.refusedCount, 1);
  assert.match(sy.lb.reloads.lastRefused!.problems[0]!, /boom\.mjs/);
  assert.equal(sy.lb.reloads.appliedCount, 0);
});

/** A third-party strategy whose state is the set of backends it has picked: which pool's it is shows. */
const REMEMBERING_STRATEGY_MJS = `
const log = globalThis.__lbRecorder.events;
export default {
  kind: 'strategy',
  create(_config, api) {
    const inherited = api.inherited instanceof Set;
    const seen = inherited ? api.inherited : new Set();
    return {
      pick(candidates) {
        const url = candidates[0].url;
        if (inherited) log.push(seen.has(url) ? 'own state' : 'another pool\\'s state');
        seen.add(url);
        return candidates[0];
      },
      handOver() { return seen; },
    };
  },
};
`;

test('pools with alike strategies each keep their own state when a reload reorders them', async (t) => {
  recorder.events.length = 0;
  const [b1, b2] = [await startBackend('b1'), await startBackend('b2')];
  const pool = (name: string, backend: TestBackend) =>
    `[pools.${name}]\nstrategy = "./remembering.mjs"\nbackends = [{ url = "${backend.url}" }]\n`;
  const routes = `[[routes]]\nmatch = { path_prefix = "/a" }\npool = "a"\n\n[[routes]]\nmatch = { path_prefix = "/b" }\npool = "b"\n`;
  const config = (pools: string) => `[server]\nlisten = "127.0.0.1:0"\n\n${pools}\n${routes}`;
  const sy = await startSwitchyard({ toml: config(pool('a', b1) + pool('b', b2)), files: { 'remembering.mjs': REMEMBERING_STRATEGY_MJS } });
  t.after(async () => {
    await sy.close();
    await Promise.all([b1.close(), b2.close()]);
  });
  assert.equal((await request(`${sy.url}/a`)).body, 'b1');
  assert.equal((await request(`${sy.url}/b`)).body, 'b2');
  await sy.reload(config(pool('b', b2) + pool('a', b1)));
  assert.equal((await request(`${sy.url}/a`)).body, 'b1');
  assert.equal((await request(`${sy.url}/b`)).body, 'b2');
  assert.deepEqual(recorder.events, ['own state', 'own state']);
});

test('a pool inserted before pools with alike strategies takes none of their states: each keeps its own', async (t) => {
  recorder.events.length = 0;
  const [b1, b2, b3] = [await startBackend('b1'), await startBackend('b2'), await startBackend('b3')];
  const pool = (name: string, backend: TestBackend) =>
    `[pools.${name}]\nstrategy = "./remembering.mjs"\nbackends = [{ url = "${backend.url}" }]\n`;
  const route = (name: string) => `[[routes]]\nmatch = { path_prefix = "/${name}" }\npool = "${name}"\n`;
  const config = (pools: string, routes: string) => `[server]\nlisten = "127.0.0.1:0"\n\n${pools}\n${routes}`;
  const sy = await startSwitchyard({
    toml: config(pool('a', b1) + pool('b', b2), route('a') + route('b')),
    files: { 'remembering.mjs': REMEMBERING_STRATEGY_MJS },
  });
  t.after(async () => {
    await sy.close();
    await Promise.all([b1.close(), b2.close(), b3.close()]);
  });
  assert.equal((await request(`${sy.url}/a`)).body, 'b1');
  assert.equal((await request(`${sy.url}/b`)).body, 'b2');
  await sy.reload(config(pool('c', b3) + pool('a', b1) + pool('b', b2), route('c') + route('a') + route('b')));
  assert.equal((await request(`${sy.url}/c`)).body, 'b3');
  assert.equal((await request(`${sy.url}/a`)).body, 'b1');
  assert.equal((await request(`${sy.url}/b`)).body, 'b2');
  // The new pool c starts fresh (it logs nothing); a and b find their own state.
  assert.deepEqual(recorder.events, ['own state', 'own state']);
});
