import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import http from 'node:http';
import type { Socket } from 'node:net';
import { Ajv } from 'ajv';
import { LbError, type MiddlewareDefinition, type MiddlewareInstance, type PluginApi, type RequestContext, type ResponseHead } from '../../src/index.js';
import retryPlugin, {
  backoffDelay,
  compilePolicy,
  outcomeOfError,
  RetrySharedState,
  schema,
  shouldRetry,
  type Outcome,
  type RetryConfig,
} from '../../plugins/retry.js';
import { startSwitchyard, type RunningSwitchyard } from '../../src/testing.js';
import { freePort, startBackend } from '../helpers/backends.js';
import { startHangingListener } from '../helpers/hanging-listener.js';
import { readRequestHead, startRawBackend } from '../helpers/raw-http.js';
import { request } from '../helpers/http-client.js';
import { assertDescribed } from '../helpers/schema-checks.js';
import { within } from '../helpers/waiting.js';

/** Through the contract, as the core calls it. */
const retry: MiddlewareDefinition = retryPlugin;
const noop = () => {};
const api = { pluginName: 'retry', clock: { now: () => Date.now() }, logger: { debug: noop, info: noop, warn: noop, error: noop } } as unknown as PluginApi;
/** Same options as the core's config loader. */
const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const validate = ajv.compile(schema);

function config(table: unknown): RetryConfig {
  const copy = structuredClone(table);
  assert.ok(validate(copy), JSON.stringify(validate.errors));
  return copy as unknown as RetryConfig;
}

test('schema: closed, described, defaults filled', () => {
  assertDescribed(schema);
  assert.deepEqual(config({}), {
    attempts: 3,
    backoff: '50ms',
    on: ['connect-error', '502', '503', '504'],
    methods: ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'],
    max_replay_body: '1MB',
    max_replay_memory: '64MB',
  });
});

const tables = [
  { desc: 'reference table', table: { attempts: 3, backoff: '50ms', methods: ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'], on: ['connect-error', '502', '503', '504'] }, ok: true },
  { desc: 'reset, timeout and 429', table: { on: ['reset', 'timeout', '429'] }, ok: true },
  { desc: 'POST listed', table: { methods: ['GET', 'POST'] }, ok: true },
  { desc: 'attempts 0', table: { attempts: 0 }, ok: false },
  { desc: 'status as a number', table: { on: [503] }, ok: false },
  { desc: 'unknown condition', table: { on: ['refused'] }, ok: false },
  { desc: '200 is not a failure', table: { on: ['200'] }, ok: false },
  { desc: 'backoff as a number', table: { backoff: 50 }, ok: false },
  { desc: 'max_replay_body not a size', table: { max_replay_body: '1 megabyte' }, ok: false },
  { desc: 'max_replay_memory as a size', table: { max_replay_memory: '256MB' }, ok: true },
  { desc: 'max_replay_memory not a size', table: { max_replay_memory: 64 }, ok: false },
  { desc: 'unknown property', table: { retries: 2 }, ok: false },
  { desc: 'budget with a ratio', table: { budget: { ratio: 0.2 } }, ok: true },
  { desc: 'budget with a ratio and a floor', table: { budget: { ratio: 0.1, min_per_second: 0 } }, ok: true },
  { desc: 'budget without a ratio', table: { budget: { min_per_second: 5 } }, ok: false },
  { desc: 'budget ratio above 1', table: { budget: { ratio: 1.5 } }, ok: false },
  { desc: 'budget ratio negative', table: { budget: { ratio: -0.1 } }, ok: false },
  { desc: 'budget as a bare number', table: { budget: 0.2 }, ok: false },
  { desc: 'budget floor not an integer', table: { budget: { ratio: 0.2, min_per_second: 0.5 } }, ok: false },
  { desc: 'budget unknown key', table: { budget: { ratio: 0.2, ttl: '10s' } }, ok: false },
];

test('schema: a budget gets its floor filled in', () => {
  assert.deepEqual(config({ budget: { ratio: 0.2 } }).budget, { ratio: 0.2, min_per_second: 10 });
});
for (const { desc, table, ok } of tables) {
  test(`schema ${ok ? 'accepts' : 'rejects'}: ${desc}`, () => {
    assert.equal(validate(structuredClone(table)), ok, JSON.stringify(validate.errors));
  });
}

const delays = [
  { desc: 'first retry, no jitter (random 0.5)', base: 50, n: 1, random: 0.5, ms: 50 },
  { desc: 'second retry doubles', base: 50, n: 2, random: 0.5, ms: 100 },
  { desc: 'third retry doubles again', base: 50, n: 3, random: 0.5, ms: 200 },
  { desc: 'lowest jitter halves', base: 50, n: 2, random: 0, ms: 50 },
  { desc: 'highest jitter ×1.5', base: 50, n: 2, random: 1, ms: 150 },
  { desc: 'capped at 10 × base', base: 50, n: 8, random: 0.5, ms: 500 },
  { desc: 'zero base never waits', base: 0, n: 3, random: 0.9, ms: 0 },
];
for (const { desc, base, n, random, ms } of delays) {
  test(`backoffDelay: ${desc}`, () => {
    assert.equal(backoffDelay(base, n, random), ms);
  });
}

const policy = compilePolicy({ attempts: 3, on: ['connect-error', '502', '503', '504'], methods: ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'] });
const everything = compilePolicy({ attempts: 3, on: ['connect-error', 'reset', 'timeout', '503'], methods: ['get'] });
const noConnect = compilePolicy({ attempts: 3, on: ['503'], methods: ['GET'] });

const decisions: { desc: string; p: typeof policy; outcome: Outcome; attempt: number; method: boolean; replayable: boolean; retry: boolean }[] = [
  { desc: 'GET 503', p: policy, outcome: 503, attempt: 1, method: true, replayable: true, retry: true },
  { desc: 'GET 502 on the second try', p: policy, outcome: 502, attempt: 2, method: true, replayable: true, retry: true },
  { desc: 'GET 503 on the last try', p: policy, outcome: 503, attempt: 3, method: true, replayable: true, retry: false },
  { desc: 'GET 500 (not listed)', p: policy, outcome: 500, attempt: 1, method: true, replayable: true, retry: false },
  { desc: 'GET 200', p: policy, outcome: 200, attempt: 1, method: true, replayable: true, retry: false },
  { desc: 'GET 404', p: policy, outcome: 404, attempt: 1, method: true, replayable: true, retry: false },
  { desc: 'GET connect error', p: policy, outcome: 'connect-error', attempt: 1, method: true, replayable: true, retry: true },
  { desc: 'GET reset (not listed by default)', p: policy, outcome: 'reset', attempt: 1, method: true, replayable: true, retry: false },
  { desc: 'GET timeout (not listed by default)', p: policy, outcome: 'timeout', attempt: 1, method: true, replayable: true, retry: false },
  { desc: 'GET reset, listed', p: everything, outcome: 'reset', attempt: 1, method: true, replayable: true, retry: true },
  { desc: 'GET timeout, listed', p: everything, outcome: 'timeout', attempt: 1, method: true, replayable: true, retry: true },
  { desc: 'POST 503', p: policy, outcome: 503, attempt: 1, method: false, replayable: true, retry: false },
  { desc: 'POST reset', p: everything, outcome: 'reset', attempt: 1, method: false, replayable: true, retry: false },
  { desc: 'POST timeout', p: everything, outcome: 'timeout', attempt: 1, method: false, replayable: true, retry: false },
  { desc: 'POST connect error (nothing was sent)', p: policy, outcome: 'connect-error', attempt: 1, method: false, replayable: false, retry: true },
  { desc: 'POST connect error on the last try', p: policy, outcome: 'connect-error', attempt: 3, method: false, replayable: false, retry: false },
  { desc: 'connect error not listed', p: noConnect, outcome: 'connect-error', attempt: 1, method: true, replayable: true, retry: false },
  { desc: 'PUT with an unbuffered body, 503', p: policy, outcome: 503, attempt: 1, method: true, replayable: false, retry: false },
  { desc: 'PUT with an unbuffered body, connect error', p: policy, outcome: 'connect-error', attempt: 1, method: true, replayable: false, retry: true },
  { desc: 'other error (e.g. protocol)', p: everything, outcome: 'other-error', attempt: 1, method: true, replayable: true, retry: false },
  { desc: 'method list is case-insensitive in config', p: everything, outcome: 503, attempt: 1, method: everything.methods.has('GET'), replayable: true, retry: true },
];
for (const d of decisions) {
  test(`shouldRetry: ${d.desc} → ${d.retry}`, () => {
    assert.equal(shouldRetry(d.p, d.outcome, d.attempt, d.method, d.replayable), d.retry);
  });
}

const errors: { desc: string; err: unknown; outcome: Outcome }[] = [
  { desc: 'connect', err: new LbError('LB_ERR_UPSTREAM_CONNECT'), outcome: 'connect-error' },
  { desc: 'connect timeout (never accepted: nothing reached the backend)', err: new LbError('LB_ERR_UPSTREAM_CONNECT_TIMEOUT'), outcome: 'connect-error' },
  { desc: 'no connection opened for lack of local resources (nothing reached any backend)', err: new LbError('LB_ERR_LOCAL_RESOURCES'), outcome: 'connect-error' },
  { desc: 'reset', err: new LbError('LB_ERR_UPSTREAM_RESET'), outcome: 'reset' },
  { desc: 'timeout', err: new LbError('LB_ERR_UPSTREAM_TIMEOUT'), outcome: 'timeout' },
  { desc: 'protocol', err: new LbError('LB_ERR_UPSTREAM_PROTOCOL'), outcome: 'other-error' },
  { desc: 'no backend', err: new LbError('LB_ERR_NO_BACKEND'), outcome: 'other-error' },
  { desc: 'client gone', err: new LbError('LB_ERR_CLIENT_GONE'), outcome: 'other-error' },
  { desc: 'plain Error', err: new Error('ECONNREFUSED'), outcome: 'other-error' },
];
for (const { desc, err, outcome } of errors) {
  test(`outcomeOfError: ${desc}`, () => {
    assert.equal(outcomeOfError(err), outcome);
  });
}

type Step = number | LbError | 'local';

interface FakeContext extends RequestContext {
  buffered: number;
  /** The `maxBytes` of each bufferBody() call. */
  bufferLimits: number[];
}

interface ScriptOptions {
  /** What bufferBody() does: buffer the payload (when it is within maxBytes), find the body too large, or fail as a client that went away. */
  readonly buffer?: 'fits' | 'too-large' | 'client-gone';
  /** The body bufferBody() finds (default 'payload', 7 bytes). */
  readonly payload?: Buffer;
  readonly headers?: Record<string, string>;
}

/** A context whose next() plays `steps` in order (a status from a backend, a thrown error, or a local answer). */
function scripted(method: string, body: RequestContext['body'], steps: Step[], options: ScriptOptions = {}) {
  const { buffer: bufferResult = 'fits', payload = Buffer.from('payload'), headers = {} } = options;
  const ctx = {
    method,
    body,
    headers,
    buffered: 0,
    bufferLimits: [],
    response: undefined as ResponseHead | undefined,
    backend: undefined,
    async bufferBody(maxBytes: number) {
      ctx.buffered++;
      ctx.bufferLimits.push(maxBytes);
      if (bufferResult === 'client-gone') throw new LbError('LB_ERR_CLIENT_GONE');
      if (bufferResult === 'too-large' || payload.length > maxBytes) return undefined;
      ctx.body = payload;
      return ctx.body;
    },
  } as unknown as FakeContext;
  let calls = 0;
  const next = async () => {
    const step = steps[calls++];
    if (step === undefined) throw new Error('next() called more often than scripted');
    if (step instanceof LbError) throw step;
    ctx.response = step === 'local' ? { status: 503, headers: {}, source: 'local' } : { status: step, headers: {}, source: 'backend' };
  };
  return { ctx, next, calls: () => calls };
}

const connect = () => new LbError('LB_ERR_UPSTREAM_CONNECT');
const connectTimeout = () => new LbError('LB_ERR_UPSTREAM_CONNECT_TIMEOUT');
const localShortage = () => new LbError('LB_ERR_LOCAL_RESOURCES');
const invalid = () => new LbError('LB_ERR_UPSTREAM_PROTOCOL');
const reset = () => new LbError('LB_ERR_UPSTREAM_RESET');
const stream = () => Readable.from([Buffer.from('payload')]);

const flows: {
  desc: string;
  table?: Record<string, unknown>;
  method: string;
  body?: 'stream' | 'buffer';
  bufferResult?: 'fits' | 'too-large';
  steps: Step[];
  calls: number;
  status?: number;
  throws?: string;
  buffered?: number;
}[] = [
  { desc: 'GET 200: one try', method: 'GET', steps: [200], calls: 1, status: 200 },
  { desc: 'GET 503 then 200: retried', method: 'GET', steps: [503, 200], calls: 2, status: 200 },
  { desc: 'GET 503 three times: the last response is left', method: 'GET', steps: [503, 502, 503], calls: 3, status: 503 },
  { desc: 'GET connect error then 200', method: 'GET', steps: [connect(), 200], calls: 2, status: 200 },
  { desc: 'GET connect timeout then 200', method: 'GET', steps: [connectTimeout(), 200], calls: 2, status: 200 },
  { desc: 'POST connect timeout: retried (nothing was sent)', method: 'POST', body: 'stream', steps: [connectTimeout(), 200], calls: 2, status: 200, buffered: 0 },
  { desc: 'GET invalid response, with every condition in on: not retried', table: { on: ['connect-error', 'reset', 'timeout', '502'] }, method: 'GET', steps: [invalid()], calls: 1, throws: 'LB_ERR_UPSTREAM_PROTOCOL' },
  { desc: 'budget with no room (ratio 0, no floor): the first failure is the answer', table: { budget: { ratio: 0, min_per_second: 0 } }, method: 'GET', steps: [503], calls: 1, status: 503 },
  { desc: 'budget with no room: a connect error is not retried either', table: { budget: { ratio: 0, min_per_second: 0 } }, method: 'GET', steps: [connect()], calls: 1, throws: 'LB_ERR_UPSTREAM_CONNECT' },
  { desc: 'budget floor of 1/s: room for retries', table: { budget: { ratio: 0, min_per_second: 1 } }, method: 'GET', steps: [503, 503, 200], calls: 3, status: 200 },
  { desc: 'GET connect errors exhausted: the last error is rethrown', method: 'GET', steps: [connect(), connect(), connect()], calls: 3, throws: 'LB_ERR_UPSTREAM_CONNECT' },
  { desc: 'GET connect error, then reset (not in on): the reset is rethrown', method: 'GET', steps: [connect(), reset()], calls: 2, throws: 'LB_ERR_UPSTREAM_RESET' },
  { desc: 'GET reset (not in on): rethrown at once', method: 'GET', steps: [reset()], calls: 1, throws: 'LB_ERR_UPSTREAM_RESET' },
  { desc: 'GET local 503 (circuit open, …): not retried', method: 'GET', steps: ['local'], calls: 1, status: 503 },
  { desc: 'POST 503: not retried', method: 'POST', body: 'stream', steps: [503], calls: 1, status: 503, buffered: 0 },
  { desc: 'POST connect error: retried', method: 'POST', body: 'stream', steps: [connect(), 200], calls: 2, status: 200, buffered: 0 },
  { desc: 'POST with no connection opened for lack of local resources: retried (nothing was sent)', method: 'POST', body: 'stream', steps: [localShortage(), 200], calls: 2, status: 200, buffered: 0 },
  { desc: 'local resource errors exhausted: the last one is rethrown (503 with Retry-After)', method: 'GET', steps: [localShortage(), localShortage(), localShortage()], calls: 3, throws: 'LB_ERR_LOCAL_RESOURCES' },
  { desc: 'a local resource error with connect-error not in on: not retried', table: { on: ['502', '503'] }, method: 'GET', steps: [localShortage()], calls: 1, throws: 'LB_ERR_LOCAL_RESOURCES' },
  { desc: 'POST listed in methods: buffered and retried on 503', table: { methods: ['POST'] }, method: 'POST', body: 'stream', steps: [503, 200], calls: 2, status: 200, buffered: 1 },
  { desc: 'PUT with a small body: buffered, retried on 503', method: 'PUT', body: 'stream', steps: [503, 200], calls: 2, status: 200, buffered: 1 },
  { desc: 'PUT with a body too large to replay: 503 not retried', method: 'PUT', body: 'stream', bufferResult: 'too-large', steps: [503], calls: 1, status: 503, buffered: 1 },
  { desc: 'PUT with a body too large to replay: connect error retried', method: 'PUT', body: 'stream', bufferResult: 'too-large', steps: [connect(), 200], calls: 2, status: 200 },
  { desc: 'PUT whose body is already a Buffer: retried without buffering', method: 'PUT', body: 'buffer', steps: [503, 200], calls: 2, status: 200, buffered: 0 },
  { desc: 'attempts = 1: never retried', table: { attempts: 1 }, method: 'GET', steps: [503], calls: 1, status: 503 },
  { desc: 'attempts = 5', table: { attempts: 5 }, method: 'GET', steps: [503, 503, 503, 503, 200], calls: 5, status: 200 },
];
for (const f of flows) {
  test(`handle: ${f.desc}`, async () => {
    const instance = await retry.create(config({ backoff: '0ms', ...f.table }), api);
    const body = f.body === 'stream' ? stream() : f.body === 'buffer' ? Buffer.from('x') : null;
    const { ctx, next, calls } = scripted(f.method, body, f.steps, { buffer: f.bufferResult });
    if (f.throws !== undefined) {
      await assert.rejects(instance.handle(ctx, next), { code: f.throws });
    } else {
      await instance.handle(ctx, next);
      assert.equal(ctx.response?.status, f.status);
    }
    assert.equal(calls(), f.calls);
    if (f.buffered !== undefined) assert.equal(ctx.buffered, f.buffered);
  });
}

test('budget: spent across requests, and handed to the next instance of the same table (a reload)', async () => {
  // Ratio 0.5, no floor: a retry per two requests.
  const table = config({ backoff: '0ms', budget: { ratio: 0.5, min_per_second: 0 } });
  const failing = () => scripted('GET', null, [503, 503, 503]);
  const first = await retry.create(table, api);
  const one = failing();
  await first.handle(one.ctx, one.next);
  assert.equal(one.calls(), 1, 'one request: half a retry, no room yet');
  const two = failing();
  await first.handle(two.ctx, two.next);
  assert.equal(two.calls(), 2, 'two requests: room for one retry');
  for (let i = 0; i < 4; i++) {
    const ok = scripted('GET', null, [200]);
    await first.handle(ok.ctx, ok.next);
  }

  // Six requests and one retry so far: a seventh has room for two retries, in an instance that inherited the count.
  const next = await retry.create(table, { ...api, inherited: first.handOver!() } as PluginApi);
  const seven = failing();
  await next.handle(seven.ctx, seven.next);
  assert.equal(seven.calls(), 3);

  const fresh = await retry.create(table, api);
  const alone = failing();
  await fresh.handle(alone.ctx, alone.next);
  assert.equal(alone.calls(), 1, 'an instance that inherited nothing starts with an empty window');
});

/** `api` with a logger that keeps its warnings. */
function recordingApi(): { api: PluginApi; warnings: { fields: Record<string, unknown>; message: string }[] } {
  const warnings: { fields: Record<string, unknown>; message: string }[] = [];
  const warn = (fields: object | string, message?: string) => warnings.push({ fields: fields as Record<string, unknown>, message: message ?? '' });
  return { api: { ...api, logger: { debug: noop, info: noop, warn, error: noop } } as PluginApi, warnings };
}

/** The replay memory an instance uses (what it hands over on a reload). */
function replayMemoryOf(instance: MiddlewareInstance) {
  const shared = instance.handOver!();
  assert.ok(shared instanceof RetrySharedState);
  return shared.replayMemory;
}

const MB = 1024 * 1024;

const reservations: {
  desc: string;
  table?: Record<string, unknown>;
  method?: string;
  body?: 'stream' | 'buffer';
  headers?: Record<string, string>;
  buffer?: 'fits' | 'too-large';
  /** Bytes other requests hold before this one comes. */
  preHeld?: number;
  /** What bufferBody() was asked for: the reservation. */
  bufferLimits: number[];
  steps: Step[];
  calls: number;
  warned: number;
}[] = [
  { desc: 'a body of unknown length (chunked) reserves max_replay_body', bufferLimits: [MB], steps: [503, 200], calls: 2, warned: 0 },
  { desc: 'a body of unknown length, with less than max_replay_body left, reserves what is left', table: { max_replay_memory: '1KB' }, preHeld: 1000, bufferLimits: [24], steps: [503, 200], calls: 2, warned: 0 },
  { desc: 'a body of unknown length longer than what was left streams once, warned', table: { max_replay_memory: '1KB' }, preHeld: 1000, buffer: 'too-large', bufferLimits: [24], steps: [503], calls: 1, warned: 1 },
  { desc: 'a body of unknown length longer than max_replay_body, with room to spare, streams once as configured: no warning', buffer: 'too-large', bufferLimits: [MB], steps: [503], calls: 1, warned: 0 },
  { desc: 'no replay memory left: not read, streamed once, a 503 is not retried, warned', table: { max_replay_memory: '1KB' }, preHeld: 1024, bufferLimits: [], steps: [503], calls: 1, warned: 1 },
  { desc: 'no replay memory left: a connect error is still retried (nothing was sent)', table: { max_replay_memory: '1KB' }, preHeld: 1024, bufferLimits: [], steps: [connect(), 200], calls: 2, warned: 1 },
  { desc: 'a Content-Length body reserves exactly its length', headers: { 'content-length': '70000' }, bufferLimits: [70000], steps: [503, 200], calls: 2, warned: 0 },
  { desc: 'a Content-Length body larger than what is left: not read, streamed once, warned', table: { max_replay_memory: '100KB' }, preHeld: 40_000, headers: { 'content-length': '70000' }, bufferLimits: [], steps: [503], calls: 1, warned: 1 },
  { desc: 'a Content-Length body over max_replay_body streams once as configured: nothing reserved, no warning', headers: { 'content-length': String(2 * MB) }, bufferLimits: [], steps: [503], calls: 1, warned: 0 },
  { desc: 'a body the core read whole costs nothing: retried with no replay memory left', table: { max_replay_memory: '1KB' }, preHeld: 1024, body: 'buffer', bufferLimits: [], steps: [503, 200], calls: 2, warned: 0 },
  { desc: 'POST (not in methods) streams once: nothing reserved, no warning', table: { max_replay_memory: '1KB' }, preHeld: 1024, method: 'POST', bufferLimits: [], steps: [503], calls: 1, warned: 0 },
];
for (const r of reservations) {
  test(`replay memory: ${r.desc}`, async () => {
    const { api: recording, warnings } = recordingApi();
    const instance = await retry.create(config({ backoff: '0ms', ...r.table }), recording);
    const memory = replayMemoryOf(instance);
    if (r.preHeld !== undefined) assert.ok(memory.reserve(r.preHeld));
    const body = r.body === 'buffer' ? Buffer.from('x') : stream();
    const { ctx, next, calls } = scripted(r.method ?? 'PUT', body, r.steps, { buffer: r.buffer, headers: r.headers });
    await instance.handle(ctx, next);
    assert.equal(calls(), r.calls);
    assert.deepEqual(ctx.bufferLimits, r.bufferLimits);
    assert.equal(warnings.length, r.warned, JSON.stringify(warnings));
    assert.equal(memory.held, r.preHeld ?? 0, 'the request gave back all it reserved');
  });
}

const releases: { desc: string; steps: Step[]; buffer?: 'client-gone'; throws?: string; tries: number }[] = [
  { desc: 'answered after a retry', steps: [503, 200], tries: 2 },
  { desc: 'every try failed: the last answer stands', steps: [503, 502, 503], tries: 3 },
  { desc: 'the client went away between tries', steps: [503, new LbError('LB_ERR_CLIENT_GONE')], throws: 'LB_ERR_CLIENT_GONE', tries: 2 },
  { desc: 'a failure that is not retried', steps: [invalid()], throws: 'LB_ERR_UPSTREAM_PROTOCOL', tries: 1 },
  { desc: 'the body never arrived whole (bufferBody rejected)', steps: [], buffer: 'client-gone', throws: 'LB_ERR_CLIENT_GONE', tries: 0 },
];
for (const r of releases) {
  test(`replay memory: held at the body's size during every try, released when ${r.desc}`, async () => {
    const instance = await retry.create(config({ backoff: '0ms', max_replay_memory: '1KB' }), api);
    const memory = replayMemoryOf(instance);
    const { ctx, next } = scripted('PUT', stream(), r.steps, { buffer: r.buffer });
    const heldDuringTries: number[] = [];
    const observed = () => {
      heldDuringTries.push(memory.held);
      return next();
    };
    if (r.throws === undefined) await instance.handle(ctx, observed);
    else await assert.rejects(instance.handle(ctx, observed), { code: r.throws });
    assert.deepEqual(heldDuringTries, Array(r.tries).fill('payload'.length), 'shrunk from 1 KB to the 7 bytes held');
    assert.equal(memory.held, 0);
  });
}

test('replay memory: the warning that it is full is logged once, then counted (reported when the window ends, or at close)', async () => {
  const { api: recording, warnings } = recordingApi();
  const instance = await retry.create(config({ backoff: '0ms', max_replay_memory: '1KB', max_replay_body: '512KB' }), recording);
  assert.ok(replayMemoryOf(instance).reserve(1024));
  for (let i = 0; i < 5; i++) {
    const { ctx, next } = scripted('PUT', stream(), [503]);
    await instance.handle(ctx, next);
  }
  assert.equal(warnings.length, 1, 'one line for five bodies streamed once');
  assert.match(warnings[0]!.message, /^replay memory is full: .*raise max_replay_memory \(now 1KB\).*lower max_replay_body \(now 512KB\)/);
  assert.deepEqual(warnings[0]!.fields, { held: 1024, max_replay_memory: '1KB' });
  await instance.close?.();
  assert.equal(warnings.length, 2);
  assert.equal(warnings[1]!.fields.repeated, 4);
  assert.match(warnings[1]!.message, /\(4 more like it in the last \d+(\.\d)?s\)$/);
});

test('replay memory: handed to the next instance of the same table (a reload), so a body in flight on the old one still counts', async () => {
  const table = config({ backoff: '0ms', max_replay_memory: '1KB' });
  const first = await retry.create(table, api);
  // A request on the old instance holds 1000 of the 1024 bytes while its first try is out.
  let releaseTry!: () => void;
  const tryReleased = new Promise<void>((resolve) => (releaseTry = resolve));
  let tryStarted!: () => void;
  const started = new Promise<void>((resolve) => (tryStarted = resolve));
  const old = scripted('PUT', stream(), [503, 200], { payload: Buffer.alloc(1000) });
  let firstTry = true;
  const inFlight = first.handle(old.ctx, async () => {
    if (firstTry) {
      firstTry = false;
      tryStarted();
      await tryReleased;
    }
    return old.next();
  });
  await started;

  const second = await retry.create(table, { ...api, inherited: first.handOver!() } as PluginApi);
  assert.equal(replayMemoryOf(second), replayMemoryOf(first), 'one replay memory for both');
  const refused = scripted('PUT', stream(), [503], { payload: Buffer.alloc(1000) });
  await second.handle(refused.ctx, refused.next);
  assert.deepEqual(refused.ctx.bufferLimits, [24], 'the new instance had only what the old one left');
  assert.equal(refused.calls(), 1, 'streamed once: its 503 is the answer');

  const fresh = await retry.create(table, api);
  const alone = scripted('PUT', stream(), [503, 200], { payload: Buffer.alloc(1000) });
  await fresh.handle(alone.ctx, alone.next);
  assert.deepEqual(alone.ctx.bufferLimits, [1024], 'an instance that inherited nothing has a replay memory of its own');

  releaseTry();
  await inFlight;
  assert.equal(old.calls(), 2, 'the old request was retried');
  const after = scripted('PUT', stream(), [503, 200], { payload: Buffer.alloc(1000) });
  await second.handle(after.ctx, after.next);
  assert.deepEqual(after.ctx.bufferLimits, [1024], 'given back when the old request ended');
  assert.equal(after.calls(), 2);
});

test('handle: a plugin bug (not an LbError) is not retried', async () => {
  const instance = await retry.create(config({ backoff: '0ms' }), api);
  let calls = 0;
  await assert.rejects(
    instance.handle(scripted('GET', null, []).ctx, async () => {
      calls++;
      throw new TypeError('bug');
    }),
    TypeError,
  );
  assert.equal(calls, 1);
});

test('handle: waits the backoff between tries, and not much longer', async () => {
  const instance = await retry.create(config({ backoff: '40ms' }), api);
  const { ctx, next } = scripted('GET', null, [503, 503, 200]);
  // The two longest waits, timed alongside: on a loaded machine timers fire
  // late, by as much as this process is kept off the CPU, and that is no
  // longer wait of the plugin's.
  const reference = (async () => {
    const from = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 60));
    await new Promise((resolve) => setTimeout(resolve, 120));
    return performance.now() - from;
  })();
  const started = performance.now();
  await instance.handle(ctx, next);
  const elapsed = performance.now() - started;
  const longest = await reference;
  // 40 ms × [0.5, 1.5) + 80 ms × [0.5, 1.5) → between 60 and 180 ms.
  assert.ok(elapsed >= 55, `waited only ${elapsed} ms`);
  assert.ok(elapsed < longest + 100, `waited ${Math.round(elapsed)} ms; timers of 60 then 120 ms took ${Math.round(longest)} ms meanwhile`);
});

// End to end: real backends, real proxy, real sockets on 127.0.0.1.

function retryToml(urls: string[], extra = ''): string {
  return `
[server]
listen = "127.0.0.1:0"
[pools.web]
strategy = "round-robin"
passive_failures = 0
backends = [${urls.map((u) => `{ url = "${u}" }`).join(', ')}]
[[pipeline]]
plugin = "retry"
backoff = "10ms"
${extra}
`;
}

/** A backend answering 200 "ok:" + the request body it received. */
function startEchoBackend() {
  return startBackend('ok', (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => res.end(`ok:${Buffer.concat(chunks).toString()}`));
  });
}

test('e2e: a backend that refuses connections beside a healthy one — GET (and POST, nothing was sent) always succeed', async () => {
  const healthy = await startEchoBackend();
  const closedPort = await freePort();
  let lb: RunningSwitchyard | undefined;
  try {
    lb = await startSwitchyard({ toml: retryToml([`http://127.0.0.1:${closedPort}`, healthy.url]) });
    for (let i = 0; i < 10; i++) {
      const get = await request(lb.url);
      assert.equal(get.status, 200, `GET ${i}: ${get.body}`);
      const post = await request(lb.url, { method: 'POST', body: `p${i}`, headers: { 'content-type': 'text/plain' } });
      assert.equal(post.status, 200, `POST ${i}: ${post.body}`);
      assert.equal(post.body, `ok:p${i}`, 'the body arrives whole after a connect-error retry');
    }
    assert.equal(healthy.hits, 20);
  } finally {
    await lb?.close();
    await healthy.close();
  }
});

test('e2e: a backend answering 503 — POST is not retried, GET (with or without a body) is retried on the other backend', async () => {
  const failing = await startBackend('failing', (_req, res) => {
    res.statusCode = 503;
    res.end('unavailable');
  });
  const healthy = await startEchoBackend();
  let lb: RunningSwitchyard | undefined;
  try {
    lb = await startSwitchyard({ toml: retryToml([failing.url, healthy.url]) });
    let posts503 = 0;
    for (let i = 0; i < 4; i++) {
      const before = { failing: failing.hits, healthy: healthy.hits };
      const post = await request(lb.url, { method: 'POST', body: 'x' });
      if (post.status === 503) {
        posts503++;
        assert.deepEqual({ failing: failing.hits - before.failing, healthy: healthy.hits - before.healthy }, { failing: 1, healthy: 0 }, 'POST tried once');
      } else {
        assert.equal(post.status, 200);
      }
    }
    assert.ok(posts503 >= 1, 'round-robin sent some POSTs to the failing backend');

    const failingBefore = failing.hits;
    for (let i = 0; i < 6; i++) {
      const get = await request(lb.url);
      assert.equal(get.status, 200, `GET ${i}`);
      assert.equal(get.body, 'ok:');
      const put = await request(lb.url, { method: 'PUT', body: `put-${i}` });
      assert.equal(put.status, 200, `PUT ${i}`);
      assert.equal(put.body, `ok:put-${i}`, 'a buffered body is replayed whole');
    }
    assert.ok(failing.hits > failingBefore, 'the failing backend was tried first at times, then the request was retried');
  } finally {
    await lb?.close();
    await Promise.all([failing.close(), healthy.close()]);
  }
});

test('e2e: a body larger than max_replay_body is streamed once and not retried on 503', async () => {
  const failing = await startBackend('failing', (req, res) => {
    req.resume();
    req.on('end', () => {
      res.statusCode = 503;
      res.end('unavailable');
    });
  });
  let lb: RunningSwitchyard | undefined;
  try {
    lb = await startSwitchyard({ toml: retryToml([failing.url], 'max_replay_body = "1KB"') });
    const small = await request(lb.url, { method: 'PUT', body: 'x'.repeat(100) });
    assert.equal(small.status, 503);
    assert.equal(failing.hits, 3, 'a small body is retried (same backend: the only one)');
    const large = await request(lb.url, { method: 'PUT', body: 'x'.repeat(64 * 1024) });
    assert.equal(large.status, 503);
    assert.equal(failing.hits, 4, 'a large body went once');
  } finally {
    await lb?.close();
    await failing.close();
  }
});

test('e2e: a backend that never accepts the connection beside a healthy one — connect_timeout is retried like a refused connect, for POST too', async () => {
  const hanging = await startHangingListener();
  const healthy = await startEchoBackend();
  let lb: RunningSwitchyard | undefined;
  try {
    lb = await startSwitchyard({ toml: retryToml([hanging.url, healthy.url]).replace('passive_failures = 0', 'passive_failures = 0\nconnect_timeout = "100ms"') });
    for (let i = 0; i < 3; i++) {
      const get = await request(lb.url);
      assert.equal(get.status, 200, `GET ${i}: ${get.body}`);
      const post = await request(lb.url, { method: 'POST', body: `p${i}` });
      assert.equal(post.status, 200, `POST ${i}: ${post.body}`);
      assert.equal(post.body, `ok:p${i}`);
    }
    assert.equal(healthy.hits, 6);
  } finally {
    await lb?.close();
    await Promise.all([hanging.close(), healthy.close()]);
  }
});

test('e2e: an invalid response is not a reset — on = ["reset"] does not retry it', async () => {
  let invalidRequests = 0;
  const invalid = await startRawBackend(async (socket) => {
    while (!socket.destroyed) {
      await readRequestHead(socket);
      socket.resume();
      invalidRequests++;
      socket.write('HTTP/1.1 abc OK\r\n\r\n');
    }
  });
  const healthy = await startBackend('ok');
  let lb: RunningSwitchyard | undefined;
  try {
    lb = await startSwitchyard({ toml: retryToml([invalid.url, healthy.url], 'on = ["reset"]') });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await request(lb.url)).status);
    assert.deepEqual(statuses.sort(), [200, 200, 502, 502], 'round-robin: every other request met the invalid backend and got its 502');
    assert.equal(invalidRequests, 2);
    assert.equal(healthy.hits, 2, 'no retry went to the healthy backend');
  } finally {
    await lb?.close();
    await Promise.all([invalid.close(), healthy.close()]);
  }
});

test('e2e: with a budget, a backend failing every request gets ratio × requests retries, not attempts × requests', async () => {
  const failing = await startBackend('failing', (_req, res) => {
    res.statusCode = 503;
    res.end('unavailable');
  });
  let lb: RunningSwitchyard | undefined;
  try {
    lb = await startSwitchyard({ toml: retryToml([failing.url], 'budget = { ratio = 0.1, min_per_second = 0 }') });
    for (let i = 0; i < 20; i++) assert.equal((await request(lb.url)).status, 503);
    // The 10th and the 20th request each found room for one retry.
    assert.equal(failing.hits, 22);
  } finally {
    await lb?.close();
    await failing.close();
  }
});

test('e2e: a client that goes away during the backoff is not retried for — the DELETE it abandoned never reaches another backend', async () => {
  let failedOnce!: () => void;
  const failed = new Promise<void>((resolve) => (failedOnce = resolve));
  const failing = await startBackend('failing', (_req, res) => {
    res.statusCode = 503;
    res.end('busy', failedOnce);
  });
  const healthy = await startBackend('ok');
  // An outer layer that says when the retry plugin is done with the request, whatever the client did.
  const finished = new Promise<void>((resolve) => ((globalThis as { __retryGoneDone?: () => void }).__retryGoneDone = resolve));
  const observer = `export default { kind: 'middleware', create() { return { async handle(ctx, next) { try { await next(); } finally { globalThis.__retryGoneDone(); } } }; } };`;
  let lb: RunningSwitchyard | undefined;
  let client: http.ClientRequest | undefined;
  try {
    lb = await startSwitchyard({
      files: { 'observer.mjs': observer },
      toml: `
[server]
listen = "127.0.0.1:0"
[pools.web]
strategy = "round-robin"
passive_failures = 0
backends = [{ url = "${failing.url}" }, { url = "${healthy.url}" }]
[[pipeline]]
plugin = "./observer.mjs"
[[pipeline]]
plugin = "retry"
backoff = "300ms"
`,
    });
    client = http.request(`${lb.url}/item/1`, { method: 'DELETE' });
    client.on('error', () => {});
    client.end();
    await failed;
    // The retry now waits 150-450 ms; the client gives up meanwhile.
    client.destroy();
    await within(finished, 5000, 'the pipeline never finished');
    assert.equal(failing.hits, 1);
    assert.equal(healthy.hits, 0, 'the abandoned DELETE was sent again');
  } finally {
    client?.destroy();
    delete (globalThis as { __retryGoneDone?: () => void }).__retryGoneDone;
    await lb?.close();
    await failing.close();
    await healthy.close();
  }
});

/**
 * A backend that answers the first try of each path 503 — for `heldPath`
 * only once the test calls `release()` — and later tries 200, keeping every
 * body it received, by path.
 */
async function startFirstTryFailsBackend(heldPath: string) {
  const bodies = new Map<string, Buffer[]>();
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let heldArrived!: () => void;
  const arrived = new Promise<void>((resolve) => (heldArrived = resolve));
  const backend = await startBackend('first-try-fails', (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const path = req.url!;
      const seen = bodies.get(path) ?? [];
      bodies.set(path, seen);
      seen.push(Buffer.concat(chunks));
      if (seen.length > 1) {
        res.end('ok');
        return;
      }
      if (path === heldPath) {
        heldArrived();
        await released;
      }
      res.statusCode = 503;
      res.end('busy');
    });
  });
  return { backend, bodies, heldArrived: arrived, release };
}

/** A PUT of `body`: chunked (no length known up front), or with a Content-Length too large for the core to read it whole. */
function put(url: string, body: Buffer, framing: 'chunked' | 'content-length') {
  return request(url, { method: 'PUT', body, headers: framing === 'chunked' ? { 'transfer-encoding': 'chunked' } : { 'content-length': body.length } });
}

const streamedBodies: { desc: string; memory: string; size: number; framing: 'chunked' | 'content-length' }[] = [
  { desc: 'chunked bodies of 800 bytes, max_replay_memory 1KB', memory: '1KB', size: 800, framing: 'chunked' },
  // Over 64 KB: the core streams it (whole-body.ts reads only smaller ones whole).
  { desc: 'Content-Length bodies of 70 KB, max_replay_memory 100KB', memory: '100KB', size: 70 * 1024, framing: 'content-length' },
];

for (const row of streamedBodies) {
  for (const reload of [false, true]) {
    const title = reload
      ? `e2e: ${row.desc} — a reload that keeps the retry table keeps the replay memory: a body held by the old generation still leaves no room in the new one`
      : `e2e: ${row.desc} — while one body is held for replay, another finds no room: it streams once, its 503 is not retried, a warning says so; once the first is done, room is back`;
    test(title, async () => {
      const { backend, bodies, heldArrived, release } = await startFirstTryFailsBackend('/a');
      const payload = (tag: string) => Buffer.alloc(row.size, tag);
      const toml = retryToml([backend.url], `max_replay_memory = "${row.memory}"`);
      let lb: RunningSwitchyard | undefined;
      try {
        lb = await startSwitchyard({ toml, captureLogs: true });
        const a = put(`${lb.url}/a`, payload('a'), row.framing);
        // A's body is buffered (its reservation held) and its first try waits at the backend.
        await within(heldArrived, 5000, "A's first try never reached the backend");
        const firstGeneration = lb.lb.generation.id;
        if (reload) {
          await lb.reload(toml.replace('passive_failures = 0', 'passive_failures = 0\nconnect_timeout = "3s"'));
          assert.notEqual(lb.lb.generation.id, firstGeneration, 'B is served by the new generation');
        }

        const b = await put(`${lb.url}/b`, payload('b'), row.framing);
        assert.equal(b.status, 503, "B's first answer stands");
        assert.equal(bodies.get('/b')?.length, 1, 'B was tried once');
        assert.ok(bodies.get('/b')![0]!.equals(payload('b')), 'B streamed through whole');
        const warnings = lb.logs.filter((l) => l.level === 40 && l.msg.startsWith('replay memory is full'));
        assert.equal(warnings.length, 1, JSON.stringify(warnings));
        assert.equal(warnings[0]!.plugin, 'retry');
        assert.equal(warnings[0]!.max_replay_memory, row.memory);

        release();
        const answerA = await a;
        assert.equal(answerA.status, 200, 'A was retried');
        const seenA = bodies.get('/a')!;
        assert.equal(seenA.length, 2);
        assert.ok(seenA[0]!.equals(payload('a')) && seenA[1]!.equals(payload('a')), 'A was sent twice, byte for byte');

        const c = await put(`${lb.url}/c`, payload('c'), row.framing);
        assert.equal(c.status, 200, "C found room again (A's reservation was given back) and was retried");
        const seenC = bodies.get('/c')!;
        assert.ok(seenC.length === 2 && seenC[1]!.equals(payload('c')));
      } finally {
        release();
        await lb?.close();
        await backend.close();
      }
    });
  }
}

const departures: { desc: string; leave: (socket: Socket) => void; bodyTimeout: string; code: string }[] = [
  { desc: 'resets the connection: given back at once', leave: (socket) => socket.resetAndDestroy(), bodyTimeout: '30s', code: 'LB_ERR_CLIENT_GONE' },
  // Node answers the truncated body with a parse error (400) and forgets the request; the core then fails its body at once,
  // not when body_timeout would end the wait.
  { desc: 'closes its side of the connection: given back at once', leave: (socket) => socket.end(), bodyTimeout: '30s', code: 'LB_ERR_BAD_REQUEST' },
];
for (const d of departures) {
  test(`e2e: a client that stops halfway through a body being buffered for replay, and ${d.desc}`, async () => {
    const { backend, bodies, release } = await startFirstTryFailsBackend('none');
    // An outer layer that says when the retry plugin has the request, and how its handling of it ended.
    const hooks = globalThis as { __replayStarted?: () => void; __replayDone?: (code: unknown) => void };
    const started = new Promise<void>((resolve) => (hooks.__replayStarted = resolve));
    const finished = new Promise<unknown>((resolve) => (hooks.__replayDone = resolve));
    const observer = `export default { kind: 'middleware', create() { return { async handle(ctx, next) {
      if (ctx.path !== '/gone') return next();
      globalThis.__replayStarted();
      try { await next(); globalThis.__replayDone(undefined); } catch (err) { globalThis.__replayDone(err.code); throw err; }
    } }; } };`;
    let lb: RunningSwitchyard | undefined;
    let client: http.ClientRequest | undefined;
    try {
      lb = await startSwitchyard({
        files: { 'observer.mjs': observer },
        toml: `
[server]
listen = "127.0.0.1:0"
body_timeout = "${d.bodyTimeout}"
[pools.web]
passive_failures = 0
backends = [{ url = "${backend.url}" }]
[[pipeline]]
plugin = "./observer.mjs"
[[pipeline]]
plugin = "retry"
backoff = "10ms"
max_replay_memory = "1KB"
`,
      });
      client = http.request(`${lb.url}/gone`, { method: 'PUT', headers: { 'transfer-encoding': 'chunked' } });
      client.on('error', () => {});
      client.write(Buffer.alloc(500, 'g'));
      // Its body is being read into the 1 KB it reserved.
      await within(started, 5000, 'the request never reached the pipeline');
      d.leave(client.socket!);
      assert.equal(await within(finished, 5000, 'the retry plugin never finished with the request'), d.code);
      assert.equal(bodies.get('/gone'), undefined, 'nothing reached the backend');

      const c = await put(`${lb.url}/c`, Buffer.alloc(800, 'c'), 'chunked');
      assert.equal(c.status, 200, 'the whole 1 KB was free again: C was buffered and retried');
      assert.equal(bodies.get('/c')?.length, 2);
    } finally {
      client?.destroy();
      delete hooks.__replayStarted;
      delete hooks.__replayDone;
      release();
      await lb?.close();
      await backend.close();
    }
  });
}
