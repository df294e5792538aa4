import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { Ajv } from 'ajv';
import { LbError, type Candidate, type MiddlewareDefinition, type PluginApi, type PoolView, type RequestContext, type ResponseHead } from '../../src/index.js';
import circuitBreakerPlugin, {
  CircuitState,
  isBackendFailure,
  schema,
  type Admission,
  type CircuitBreakerConfig,
  type CircuitOptions,
} from '../../plugins/circuit-breaker.js';
import { startSwitchyard, type RunningSwitchyard } from '../../src/testing.js';
import { startBackend } from '../helpers/backends.js';
import { request } from '../helpers/http-client.js';
import { assertDescribed } from '../helpers/schema-checks.js';

/** Through the contract, as the core calls it. */
const circuitBreaker: MiddlewareDefinition = circuitBreakerPlugin;
const noop = () => {};
/** Same options as the core's config loader. */
const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const validate = ajv.compile(schema);

function config(table: unknown): CircuitBreakerConfig {
  const copy = structuredClone(table);
  assert.ok(validate(copy), JSON.stringify(validate.errors));
  return copy as unknown as CircuitBreakerConfig;
}

function apiAt(clock: { now: number }, inherited?: unknown, backendUrls: readonly string[] = [A, B]): PluginApi {
  return {
    pluginName: 'circuit-breaker',
    clock: { now: () => clock.now },
    logger: { debug: noop, info: noop, warn: noop, error: noop },
    backendUrls: new Set(backendUrls),
    inherited,
  } as unknown as PluginApi;
}

test('schema: closed, described, defaults filled', () => {
  assertDescribed(schema);
  assert.deepEqual(config({}), { failure_ratio: 0.5, window: 20, min_requests: 20, open_for: '10s' });
});

const tables = [
  { desc: 'reference table', table: { failure_ratio: 0.5, window: 20, open_for: '10s' }, ok: true },
  { desc: 'ratio 1 (all must fail)', table: { failure_ratio: 1 }, ok: true },
  { desc: 'ratio 0', table: { failure_ratio: 0 }, ok: false },
  { desc: 'ratio above 1', table: { failure_ratio: 1.5 }, ok: false },
  { desc: 'window 0', table: { window: 0 }, ok: false },
  { desc: 'open_for as a number', table: { open_for: 10 }, ok: false },
  { desc: 'unknown property', table: { threshold: 3 }, ok: false },
];
for (const { desc, table, ok } of tables) {
  test(`schema ${ok ? 'accepts' : 'rejects'}: ${desc}`, () => {
    assert.equal(validate(structuredClone(table)), ok, JSON.stringify(validate.errors));
  });
}

const options: CircuitOptions = { window: 4, failureRatio: 0.5, minRequests: 4, openForMs: 1000 };

/** A script for one circuit: 'F'/'S' record a failure/success at `t`; admit expects an answer; probe results. */
type Op =
  | { at: number; record: 'F' | 'S' }
  | { at: number; admit: Admission }
  | { at: number; probe: 'F' | 'S' }
  | { release: true }
  | { status: CircuitState['status'] };

const scripts: { desc: string; options?: Partial<CircuitOptions>; ops: Op[] }[] = [
  {
    desc: 'stays closed until min_requests are in, then opens on the ratio',
    ops: [{ at: 0, record: 'F' }, { at: 0, record: 'F' }, { at: 0, record: 'F' }, { status: 'closed' }, { at: 0, record: 'S' }, { status: 'open' }],
  },
  {
    desc: 'below the ratio stays closed; the window slides',
    ops: [
      { at: 0, record: 'F' }, { at: 0, record: 'S' }, { at: 0, record: 'S' }, { at: 0, record: 'S' }, { status: 'closed' },
      { at: 0, record: 'F' }, { status: 'closed' }, // window S S S F: 1/4
      { at: 0, record: 'F' }, { status: 'open' }, // window S S F F: 2/4
    ],
  },
  {
    desc: 'open: denies until open_for, then lets exactly one probe through',
    ops: [
      { at: 0, record: 'F' }, { at: 0, record: 'F' }, { at: 0, record: 'F' }, { at: 0, record: 'F' }, { status: 'open' },
      { at: 999, admit: 'deny' }, { at: 1000, admit: 'probe' }, { status: 'half-open' }, { at: 1001, admit: 'deny' }, { at: 5000, admit: 'deny' },
    ],
  },
  {
    desc: 'a successful probe closes it with an empty window',
    ops: [
      { at: 0, record: 'F' }, { at: 0, record: 'F' }, { at: 0, record: 'F' }, { at: 0, record: 'F' },
      { at: 1000, admit: 'probe' }, { at: 1010, probe: 'S' }, { status: 'closed' }, { at: 1010, admit: 'allow' },
      // three fresh failures are under min_requests again
      { at: 1020, record: 'F' }, { at: 1020, record: 'F' }, { at: 1020, record: 'F' }, { status: 'closed' },
    ],
  },
  {
    desc: 'a failed probe opens it again for open_for from the failure',
    ops: [
      { at: 0, record: 'F' }, { at: 0, record: 'F' }, { at: 0, record: 'F' }, { at: 0, record: 'F' },
      { at: 1000, admit: 'probe' }, { at: 1500, probe: 'F' }, { status: 'open' },
      { at: 2000, admit: 'deny' }, { at: 2499, admit: 'deny' }, { at: 2500, admit: 'probe' },
    ],
  },
  {
    desc: 'a released probe (request went elsewhere) lets the next request probe',
    ops: [
      { at: 0, record: 'F' }, { at: 0, record: 'F' }, { at: 0, record: 'F' }, { at: 0, record: 'F' },
      { at: 1000, admit: 'probe' }, { release: true }, { status: 'half-open' }, { at: 1001, admit: 'probe' },
    ],
  },
  {
    desc: 'late answers of requests admitted before it opened are ignored',
    ops: [
      { at: 0, record: 'F' }, { at: 0, record: 'F' }, { at: 0, record: 'F' }, { at: 0, record: 'F' },
      { at: 10, record: 'S' }, { at: 10, record: 'S' }, { status: 'open' }, { at: 1000, admit: 'probe' }, { at: 1000, record: 'S' }, { status: 'half-open' },
    ],
  },
  {
    desc: 'min_requests above window acts as window',
    options: { window: 2, minRequests: 20 },
    ops: [{ at: 0, record: 'F' }, { status: 'closed' }, { at: 0, record: 'F' }, { status: 'open' }],
  },
  {
    desc: 'min_requests below window judges early',
    options: { window: 10, minRequests: 2 },
    ops: [{ at: 0, record: 'S' }, { at: 0, record: 'F' }, { status: 'open' }],
  },
  {
    desc: 'ratio 1: opens only when every request in the window failed',
    options: { failureRatio: 1 },
    ops: [{ at: 0, record: 'F' }, { at: 0, record: 'F' }, { at: 0, record: 'F' }, { at: 0, record: 'S' }, { status: 'closed' }, { at: 0, record: 'F' }, { status: 'closed' }, { at: 0, record: 'F' }, { at: 0, record: 'F' }, { at: 0, record: 'F' }, { status: 'open' }],
  },
];
for (const { desc, options: extra, ops } of scripts) {
  test(`CircuitState: ${desc}`, () => {
    const circuit = new CircuitState({ ...options, ...extra });
    ops.forEach((op, i) => {
      if ('record' in op) circuit.record(op.record === 'F', op.at);
      else if ('admit' in op) assert.equal(circuit.admit(op.at), op.admit, `op ${i}: admit at ${op.at}`);
      else if ('probe' in op) circuit.recordProbe(op.probe === 'F', op.at);
      else if ('release' in op) circuit.releaseProbe();
      else assert.equal(circuit.status, op.status, `op ${i}`);
    });
  });
}

test('CircuitState: waitMs counts down while open', () => {
  const circuit = new CircuitState(options);
  for (let i = 0; i < 4; i++) circuit.record(true, 100);
  assert.equal(circuit.waitMs(100), 1000);
  assert.equal(circuit.waitMs(600), 500);
  assert.equal(circuit.waitMs(5000), 0);
  assert.deepEqual(circuit.recorded, { count: 4, failures: 4 });
});

const failures: { desc: string; err: unknown; failure: boolean }[] = [
  { desc: 'connect error', err: new LbError('LB_ERR_UPSTREAM_CONNECT'), failure: true },
  { desc: 'reset', err: new LbError('LB_ERR_UPSTREAM_RESET'), failure: true },
  { desc: 'timeout', err: new LbError('LB_ERR_UPSTREAM_TIMEOUT'), failure: true },
  { desc: 'protocol error', err: new LbError('LB_ERR_UPSTREAM_PROTOCOL'), failure: true },
  { desc: 'backend at its connection limit', err: new LbError('LB_ERR_UPSTREAM_BUSY'), failure: true },
  { desc: 'no backend (nothing was tried)', err: new LbError('LB_ERR_NO_BACKEND'), failure: false },
  { desc: 'a plugin failed', err: new LbError('LB_ERR_PLUGIN'), failure: false },
  { desc: 'client went away', err: new LbError('LB_ERR_CLIENT_GONE'), failure: false },
  { desc: 'no connection opened for lack of local resources (EMFILE…)', err: new LbError('LB_ERR_LOCAL_RESOURCES'), failure: false },
  { desc: 'plain error', err: new Error('x'), failure: false },
];
for (const { desc, err, failure } of failures) {
  test(`isBackendFailure: ${desc} → ${failure}`, () => {
    assert.equal(isBackendFailure(err), failure);
  });
}

// Plugin flows: a fake pool whose next() picks the first backend not excluded,
// and a per-backend behaviour (a status or an error).

interface FakeContext extends RequestContext {
  excluded: Set<string>;
  answered?: { status: number; headers: Record<string, string | string[]> };
}

function backends(...urls: string[]): Candidate[] {
  return urls.map((url) => ({ url, weight: 1, activeConnections: 0, healthy: true }));
}

const A = 'http://10.0.0.1:80';
const B = 'http://10.0.0.2:80';

function harness(behaviour: Record<string, number | (() => LbError)>) {
  const pool: PoolView = { name: 'web', backends: backends(A, B) };
  const served: string[] = [];
  function context(): FakeContext {
    const ctx = {
      pool,
      excluded: new Set<string>(),
      response: undefined as ResponseHead | undefined,
      backend: undefined as Candidate | undefined,
      exclude(url: string) {
        ctx.excluded.add(url);
      },
      respond(status: number, _body?: string | Buffer, headers: Record<string, string | string[]> = {}) {
        ctx.answered = { status, headers };
        ctx.response = { status, headers, source: 'local' };
      },
    } as unknown as FakeContext;
    return ctx;
  }
  function nextFor(ctx: FakeContext, prefer?: string) {
    return async () => {
      const choice = pool.backends.find((b) => !ctx.excluded.has(b.url) && (prefer === undefined || b.url === prefer)) ?? pool.backends.find((b) => !ctx.excluded.has(b.url));
      if (choice === undefined) throw new LbError('LB_ERR_NO_BACKEND');
      ctx.backend = choice;
      served.push(choice.url);
      const what = behaviour[choice.url]!;
      if (typeof what === 'function') throw what();
      ctx.response = { status: what, headers: {}, source: 'backend' };
    };
  }
  return { pool, served, context, nextFor };
}

async function send(instance: Awaited<ReturnType<MiddlewareDefinition['create']>>, h: ReturnType<typeof harness>, prefer?: string) {
  const ctx = h.context();
  try {
    await instance.handle(ctx, h.nextFor(ctx, prefer));
  } catch (err) {
    return { ctx, err };
  }
  return { ctx, err: undefined };
}

test('handle: a backend failing 5xx opens; traffic goes to the other; after open_for a probe closes it', async () => {
  const clock = { now: 0 };
  const behaviour: Record<string, number | (() => LbError)> = { [A]: 500, [B]: 200 };
  const h = harness(behaviour);
  const instance = await circuitBreaker.create(config({ window: 4, min_requests: 4, open_for: '1s' }), apiAt(clock));
  for (let i = 0; i < 4; i++) await send(instance, h);
  assert.deepEqual(h.served, [A, A, A, A]);
  const excluded = await send(instance, h);
  assert.deepEqual([...excluded.ctx.excluded], [A]);
  assert.equal(excluded.ctx.backend?.url, B);
  behaviour[A] = 200; // it recovers
  clock.now = 1000;
  const probe = h.context();
  let secondDuringProbe: FakeContext | undefined;
  await instance.handle(probe, async () => {
    // While the probe is in flight, another request still avoids A.
    const other = await send(instance, h);
    secondDuringProbe = other.ctx;
    await h.nextFor(probe, A)();
  });
  assert.deepEqual([...secondDuringProbe!.excluded], [A]);
  assert.equal(probe.excluded.size, 0);
  const after = await send(instance, h);
  assert.equal(after.ctx.excluded.size, 0, 'closed again');
  assert.equal(after.ctx.backend?.url, A);
});

test('handle: thrown connect errors count; every backend open → 503 with Retry-After, next() not called', async () => {
  const clock = { now: 0 };
  const h = harness({ [A]: () => new LbError('LB_ERR_UPSTREAM_CONNECT'), [B]: 503 });
  const instance = await circuitBreaker.create(config({ window: 2, min_requests: 2, open_for: '10s' }), apiAt(clock));
  for (let i = 0; i < 2; i++) assert.equal((await send(instance, h, A)).err?.constructor, LbError);
  for (let i = 0; i < 2; i++) await send(instance, h, B);
  assert.deepEqual(h.served, [A, A, B, B]);
  clock.now = 2500;
  const { ctx, err } = await send(instance, h);
  assert.equal(err, undefined);
  assert.equal(h.served.length, 4, 'no backend was tried');
  assert.equal(ctx.answered?.status, 503);
  assert.equal(ctx.answered?.headers['retry-after'], '8');
});

test('handle: a probe claimed by a request that went to another backend is released', async () => {
  const clock = { now: 0 };
  const behaviour: Record<string, number | (() => LbError)> = { [A]: 500, [B]: 200 };
  const h = harness(behaviour);
  const instance = await circuitBreaker.create(config({ window: 2, min_requests: 2, open_for: '1s' }), apiAt(clock));
  await send(instance, h, A);
  await send(instance, h, A);
  clock.now = 1000;
  behaviour[A] = 200;
  const elsewhere = await send(instance, h, B); // A was offered as a probe but B was chosen
  assert.equal(elsewhere.ctx.excluded.size, 0);
  const probe = await send(instance, h, A); // so the next request may still probe A
  assert.equal(probe.ctx.excluded.size, 0);
  assert.equal(probe.ctx.backend?.url, A);
  const closed = await send(instance, h, A);
  assert.equal(closed.ctx.excluded.size, 0);
});

test('handle: answers not from a backend, and errors that are not backend failures, are not counted', async () => {
  const clock = { now: 0 };
  const h = harness({ [A]: () => new LbError('LB_ERR_CLIENT_GONE'), [B]: 200 });
  const instance = await circuitBreaker.create(config({ window: 1, min_requests: 1 }), apiAt(clock));
  for (let i = 0; i < 3; i++) await send(instance, h, A);
  const ctx = h.context();
  await instance.handle(ctx, async () => {
    ctx.response = { status: 503, headers: {}, source: 'local' };
  });
  assert.equal((await send(instance, h, A)).ctx.excluded.size, 0);
});

test('handOver: circuits survive a reload', async () => {
  const clock = { now: 0 };
  const h = harness({ [A]: 500, [B]: 200 });
  const first = await circuitBreaker.create(config({ window: 1, min_requests: 1 }), apiAt(clock));
  await send(first, h, A);
  const second = await circuitBreaker.create(config({ window: 1, min_requests: 1 }), apiAt(clock, first.handOver!()));
  assert.deepEqual([...(await send(second, h)).ctx.excluded], [A]);
});

test('handOver: the circuit of a backend the new configuration drops goes once its old instance closes; a failed build forgets nothing', async () => {
  const clock = { now: 0 };
  const h = harness({ [A]: 500, [B]: 500 });
  const options = config({ window: 1, min_requests: 1 });
  const first = await circuitBreaker.create(options, apiAt(clock, undefined, [A, B]));
  await send(first, h, A);
  await send(first, h, B);
  // A reload whose generation fails to build: its instance is closed first, the running one keeps both circuits.
  const failed = await circuitBreaker.create(options, apiAt(clock, first.handOver!(), [A]));
  await failed.close!();
  assert.deepEqual([...(await send(first, h)).ctx.excluded], [A, B]);
  // A reload that drops B: while the old instance drains both circuits hold; once it closes, only A's.
  const second = await circuitBreaker.create(options, apiAt(clock, first.handOver!(), [A]));
  assert.deepEqual([...(await send(second, h)).ctx.excluded], [A, B]);
  await first.close!();
  assert.deepEqual([...(await send(second, h)).ctx.excluded], [A]);
});

// End to end: real backends, real proxy, real sockets on 127.0.0.1.

test('e2e: a backend failing 5xx opens its circuit, traffic goes to the other; after open_for a probe closes it once it recovers', async () => {
  const flaky = await startBackend('flaky');
  const steady = await startBackend('steady');
  let broken = true;
  flaky.handler = (_req, res) => {
    res.statusCode = broken ? 500 : 200;
    res.end('flaky');
  };
  let lb: RunningSwitchyard | undefined;
  const agent = new http.Agent({ keepAlive: true });
  try {
    lb = await startSwitchyard({
      toml: `
[server]
listen = "127.0.0.1:0"
[pools.web]
strategy = "round-robin"
backends = [{ url = "${flaky.url}" }, { url = "${steady.url}" }]
[[pipeline]]
plugin = "circuit-breaker"
failure_ratio = 0.5
window = 4
min_requests = 4
open_for = "1s"
`,
    });
    const url = lb.url;
    const send = () => request(url, { agent });
    // Round-robin: every other request reaches flaky; its 4th failure opens the circuit.
    for (let i = 0; i < 8; i++) await send();
    assert.equal(flaky.hits, 4);
    const openedAt = Date.now();
    for (let i = 0; i < 10; i++) {
      const res = await send();
      assert.equal(res.status, 200);
      assert.equal(res.body, 'steady', `request ${i} while open`);
    }
    assert.equal(flaky.hits, 4, 'no request reached the open backend');

    broken = false;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, 1100 - (Date.now() - openedAt))));
    const bodies: string[] = [];
    for (let i = 0; i < 6; i++) bodies.push((await send()).body);
    assert.equal(flaky.hits - 4, bodies.filter((b) => b === 'flaky').length);
    assert.ok(bodies.filter((b) => b === 'flaky').length >= 2, `probe then normal traffic: ${bodies.join(',')}`);
  } finally {
    agent.destroy();
    await lb?.close();
    await Promise.all([flaky.close(), steady.close()]);
  }
});

test('e2e: every backend open → 503 at once with Retry-After; a failed probe opens it again', async () => {
  const only = await startBackend('only', (_req, res) => {
    res.statusCode = 502;
    res.end('bad gateway');
  });
  let lb: RunningSwitchyard | undefined;
  try {
    lb = await startSwitchyard({
      toml: `
[server]
listen = "127.0.0.1:0"
[pools.web]
backends = [{ url = "${only.url}" }]
[[pipeline]]
plugin = "circuit-breaker"
window = 2
min_requests = 2
open_for = "2s"
`,
    });
    for (let i = 0; i < 2; i++) assert.equal((await request(lb.url)).status, 502);
    const open = await request(lb.url);
    assert.equal(open.status, 503);
    assert.match(String(open.headers['retry-after']), /^[12]$/);
    assert.match(open.body, /circuit open/);
    assert.equal(only.hits, 2);
    await new Promise((resolve) => setTimeout(resolve, 2100));
    assert.equal((await request(lb.url)).status, 502, 'the probe reaches the backend');
    assert.equal(only.hits, 3);
    assert.equal((await request(lb.url)).status, 503, 'failed probe: open again');
    assert.equal(only.hits, 3);
  } finally {
    await lb?.close();
    await only.close();
  }
});

test('e2e: with retry before it, each try is recorded and a retry skips an open circuit', async () => {
  const down = await startBackend('down', (_req, res) => {
    res.statusCode = 503;
    res.end('down');
  });
  const up = await startBackend('up');
  let lb: RunningSwitchyard | undefined;
  try {
    lb = await startSwitchyard({
      toml: `
[server]
listen = "127.0.0.1:0"
[pools.web]
strategy = "round-robin"
backends = [{ url = "${down.url}" }, { url = "${up.url}" }]
[[pipeline]]
plugin = "retry"
backoff = "1ms"
[[pipeline]]
plugin = "circuit-breaker"
window = 3
min_requests = 3
open_for = "30s"
`,
    });
    for (let i = 0; i < 10; i++) {
      const res = await request(lb.url);
      assert.equal(res.status, 200, `request ${i}`);
      assert.equal(res.body, 'up');
    }
    assert.equal(down.hits, 3, 'three failed tries opened the circuit; no more after that');
  } finally {
    await lb?.close();
    await Promise.all([down.close(), up.close()]);
  }
});

test('e2e: clients that go away before a healthy backend answers do not open its circuit', async () => {
  let slow = true;
  const backend = await startBackend('b', (_req, res) => {
    if (slow) setTimeout(() => res.end('late'), 300);
    else res.end('b');
  });
  let lb: RunningSwitchyard | undefined;
  try {
    lb = await startSwitchyard({
      toml: `
[server]
listen = "127.0.0.1:0"
[pools.web]
backends = [{ url = "${backend.url}" }]
[[pipeline]]
plugin = "circuit-breaker"
window = 3
min_requests = 3
open_for = "30s"
`,
    });
    for (let i = 0; i < 5; i++) {
      // Give up 50 ms in, long before the backend answers.
      await assert.rejects(request(lb.url, { timeoutMs: 50 }), /timed out/);
    }
    await new Promise((r) => setTimeout(r, 100)); // the proxy sees each close asynchronously
    slow = false;
    const res = await request(lb.url);
    assert.equal(res.status, 200, `got ${res.status} ${res.body}: the circuit opened on client aborts`);
    assert.equal(lb.lb.registry.get(backend.url)!.failures, 0);
  } finally {
    await lb?.close();
    await backend.close();
  }
});
