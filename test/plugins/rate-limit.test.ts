import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { Ajv } from 'ajv';
import type { MiddlewareDefinition, PluginApi, RequestContext } from '../../src/index.js';
import rateLimitPlugin, {
  keyFunction,
  limitHeaders,
  MemoryBucketStore,
  schema,
  SharedStore,
  takeToken,
  type Bucket,
  type Decision,
  type RateLimitConfig,
  type RateLimitStore,
} from '../../plugins/rate-limit.js';
import { startSwitchyard, type RunningSwitchyard } from '../../src/testing.js';
import { startBackend, type TestBackend } from '../helpers/backends.js';
import { request } from '../helpers/http-client.js';
import { assertDescribed } from '../helpers/schema-checks.js';

/** Through the contract, as the core calls it. */
const rateLimit: MiddlewareDefinition = rateLimitPlugin;
/** Same options as the core's config loader. */
const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const validate = ajv.compile(schema);

function config(table: unknown): RateLimitConfig {
  const copy = structuredClone(table);
  assert.ok(validate(copy), JSON.stringify(validate.errors));
  return copy as unknown as RateLimitConfig;
}

function apiAt(clock: { now: number }, inherited?: unknown): PluginApi {
  return { pluginName: 'rate-limit', clock: { now: () => clock.now }, inherited } as unknown as PluginApi;
}

test('schema: closed, described, defaults filled', () => {
  assertDescribed(schema);
  assert.deepEqual(config({ rate: 100, burst: 200 }), { rate: 100, burst: 200, key: 'client-ip', store: 'memory', redis_failure: 'open', redis_timeout: '100ms', max_keys: 100_000 });
});

const tables = [
  { desc: 'reference table', table: { rate: 100, burst: 200, key: 'client-ip', store: 'memory' }, ok: true },
  { desc: 'fractional rate', table: { rate: 0.5, burst: 1 }, ok: true },
  { desc: 'header key', table: { rate: 1, burst: 1, key: 'header:X-Api-Key' }, ok: true },
  { desc: 'cookie key', table: { rate: 1, burst: 1, key: 'cookie:session' }, ok: true },
  { desc: 'redis with url', table: { rate: 1, burst: 1, store: 'redis', redis_url: 'redis://127.0.0.1:6379' }, ok: true },
  { desc: 'rate missing', table: { burst: 1 }, ok: false },
  { desc: 'burst missing', table: { rate: 1 }, ok: false },
  { desc: 'rate 0', table: { rate: 0, burst: 1 }, ok: false },
  { desc: 'burst 0', table: { rate: 1, burst: 0 }, ok: false },
  { desc: 'burst fractional', table: { rate: 1, burst: 1.5 }, ok: false },
  { desc: 'unknown key kind', table: { rate: 1, burst: 1, key: 'query:user' }, ok: false },
  { desc: 'header key without a name', table: { rate: 1, burst: 1, key: 'header:' }, ok: false },
  { desc: 'unknown store', table: { rate: 1, burst: 1, store: 'memcached' }, ok: false },
  { desc: 'redis without url', table: { rate: 1, burst: 1, store: 'redis' }, ok: false },
  { desc: 'unknown property', table: { rate: 1, burst: 1, average: 3 }, ok: false },
];
for (const { desc, table, ok } of tables) {
  test(`schema ${ok ? 'accepts' : 'rejects'}: ${desc}`, () => {
    assert.equal(validate(structuredClone(table)), ok, JSON.stringify(validate.errors));
  });
}

// rate 5/s, burst 5: one token every 200 ms.
const bucketCases: { desc: string; start: Bucket; now: number; allowed: boolean; remaining: number; retryAfterMs: number; resetMs: number; tokensAfter: number }[] = [
  { desc: 'full bucket: allowed, 4 left', start: { tokens: 5, updatedAt: 0 }, now: 0, allowed: true, remaining: 4, retryAfterMs: 0, resetMs: 200, tokensAfter: 4 },
  { desc: 'last token: allowed, 0 left', start: { tokens: 1, updatedAt: 0 }, now: 0, allowed: true, remaining: 0, retryAfterMs: 0, resetMs: 1000, tokensAfter: 0 },
  { desc: 'empty: refused, a token in 200 ms', start: { tokens: 0, updatedAt: 0 }, now: 0, allowed: false, remaining: 0, retryAfterMs: 200, resetMs: 1000, tokensAfter: 0 },
  { desc: 'empty, 100 ms later: refused, 100 ms to go', start: { tokens: 0, updatedAt: 0 }, now: 100, allowed: false, remaining: 0, retryAfterMs: 100, resetMs: 900, tokensAfter: 0.5 },
  { desc: 'empty, 200 ms later: one token refilled', start: { tokens: 0, updatedAt: 0 }, now: 200, allowed: true, remaining: 0, retryAfterMs: 0, resetMs: 1000, tokensAfter: 0 },
  { desc: 'refill is capped at burst', start: { tokens: 0, updatedAt: 0 }, now: 60_000, allowed: true, remaining: 4, retryAfterMs: 0, resetMs: 200, tokensAfter: 4 },
  { desc: 'clock went backwards: no refill', start: { tokens: 0, updatedAt: 1000 }, now: 500, allowed: false, remaining: 0, retryAfterMs: 200, resetMs: 1000, tokensAfter: 0 },
];
for (const c of bucketCases) {
  test(`token bucket: ${c.desc}`, () => {
    const bucket = { ...c.start };
    const d = takeToken(bucket, c.now, 5, 5);
    assert.equal(d.allowed, c.allowed);
    assert.equal(d.limit, 5);
    assert.equal(d.remaining, c.remaining);
    assert.ok(Math.abs(d.retryAfterMs - c.retryAfterMs) < 1e-6, `retryAfterMs ${d.retryAfterMs}`);
    assert.ok(Math.abs(d.resetMs - c.resetMs) < 1e-6, `resetMs ${d.resetMs}`);
    assert.ok(Math.abs(bucket.tokens - c.tokensAfter) < 1e-6, `tokens ${bucket.tokens}`);
  });
}

test('token bucket: 20 immediate requests at rate 5, burst 5 → 5 pass; 1 s later 5 more', () => {
  const store = new MemoryBucketStore(5, 5, 100);
  const first = Array.from({ length: 20 }, () => store.take('k', 1000).allowed);
  assert.equal(first.filter(Boolean).length, 5);
  assert.deepEqual(first.slice(0, 6), [true, true, true, true, true, false]);
  const later = Array.from({ length: 20 }, () => store.take('k', 2000).allowed);
  assert.equal(later.filter(Boolean).length, 5);
});

test('token bucket: a fractional rate (0.5/s) refills one token every 2 s', () => {
  const store = new MemoryBucketStore(0.5, 1, 100);
  assert.equal(store.take('k', 0).allowed, true);
  assert.equal(store.take('k', 1999).allowed, false);
  assert.equal(store.take('k', 2000).allowed, true);
});

test('store: 100,000 distinct keys leave it at most max_keys', () => {
  const store = new MemoryBucketStore(1, 10, 1000);
  for (let i = 0; i < 100_000; i++) store.take(`key-${i}`, 0);
  assert.ok(store.size <= 1000, `size ${store.size}`);
  const defaults = new MemoryBucketStore(100, 200, 100_000);
  for (let i = 0; i < 150_000; i++) defaults.take(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, i);
  assert.ok(defaults.size <= 100_000, `size ${defaults.size}`);
});

test('store: the least recently used bucket is evicted, not an active one', () => {
  const store = new MemoryBucketStore(1, 3, 3);
  store.take('a', 0);
  store.take('a', 0);
  store.take('b', 0);
  store.take('c', 0);
  store.take('a', 0); // a is now the most recently used, with 0 tokens
  store.take('d', 0); // evicts b
  assert.equal(store.size, 3);
  assert.equal(store.take('a', 0).allowed, false, 'a kept its (empty) bucket');
  assert.equal(store.take('b', 0).remaining, 2, 'b starts over with a full bucket');
});

test('store: buckets idle long enough to be full again are dropped', () => {
  const store = new MemoryBucketStore(10, 20, 1000); // full again after 2 s idle
  for (let i = 0; i < 100; i++) store.take(`old-${i}`, 0);
  store.take('recent', 1500);
  assert.equal(store.size, 101);
  store.take('new', 2000);
  assert.equal(store.size, 2, 'the 100 idle buckets went, recent and new stay');
});

function fakeRequest(clientIp: string, headers: Record<string, string | string[] | undefined> = {}): RequestContext {
  return { clientIp, headers } as unknown as RequestContext;
}

const keys: { desc: string; spec: string; ctx: RequestContext; key: string }[] = [
  { desc: 'client-ip', spec: 'client-ip', ctx: fakeRequest('10.0.0.1'), key: '10.0.0.1' },
  { desc: 'header present (name case-insensitive)', spec: 'header:X-Api-Key', ctx: fakeRequest('10.0.0.1', { 'x-api-key': 'k1' }), key: 'k1' },
  { desc: 'header missing → client ip, kept apart from header values', spec: 'header:X-Api-Key', ctx: fakeRequest('10.0.0.1'), key: '\u000210.0.0.1' },
  { desc: 'header empty → client ip', spec: 'header:X-Api-Key', ctx: fakeRequest('10.0.0.1', { 'x-api-key': '' }), key: '\u000210.0.0.1' },
  { desc: 'cookie present', spec: 'cookie:sid', ctx: fakeRequest('10.0.0.1', { cookie: 'a=1; sid=s1' }), key: 's1' },
  { desc: 'cookie missing → client ip', spec: 'cookie:sid', ctx: fakeRequest('10.0.0.1', { cookie: 'a=1' }), key: '\u000210.0.0.1' },
];
for (const { desc, spec, ctx, key } of keys) {
  test(`key: ${desc}`, () => {
    assert.equal(keyFunction(spec)(ctx), key);
  });
}

test('key: a very long header value is hashed to a short key', () => {
  const keyOf = keyFunction('header:X-Api-Key');
  const long = 'x'.repeat(10_000);
  const key = keyOf(fakeRequest('1.1.1.1', { 'x-api-key': long }));
  assert.ok(key.length < 64);
  assert.equal(keyOf(fakeRequest('2.2.2.2', { 'x-api-key': long })), key, 'same value, same key');
  assert.notEqual(keyOf(fakeRequest('2.2.2.2', { 'x-api-key': `${long}y` })), key);
});

test('limit headers: whole seconds, at least 1', () => {
  const d: Decision = { allowed: false, limit: 5, remaining: 0, retryAfterMs: 200, resetMs: 1000 };
  assert.deepEqual(limitHeaders(d), {
    'retry-after': '1',
    'ratelimit-limit': '5',
    'ratelimit-remaining': '0',
    'ratelimit-reset': '1',
    'content-type': 'text/plain; charset=utf-8',
  });
  assert.equal(limitHeaders({ ...d, retryAfterMs: 2001, resetMs: 9500 })['retry-after'], '3');
  assert.equal(limitHeaders({ ...d, retryAfterMs: 2001, resetMs: 9500 })['ratelimit-reset'], '10');
});

interface Answer {
  status: number;
  headers: Record<string, string | string[]>;
}

function recordingContext(clientIp: string): RequestContext & { answered?: Answer } {
  const ctx = {
    clientIp,
    headers: {},
    respond(status: number, _body?: string | Buffer, headers: Record<string, string | string[]> = {}) {
      ctx.answered = { status, headers };
    },
  } as RequestContext & { answered?: Answer };
  return ctx;
}

test('handle: passes the burst, then answers 429 with Retry-After and RateLimit-*, per client', async () => {
  const clock = { now: 10_000 };
  const instance = await rateLimit.create(config({ rate: 5, burst: 5 }), apiAt(clock));
  let forwarded = 0;
  const next = async () => {
    forwarded++;
  };
  const answers: (Answer | undefined)[] = [];
  for (let i = 0; i < 7; i++) {
    const ctx = recordingContext('10.0.0.1');
    await instance.handle(ctx, next);
    answers.push(ctx.answered);
  }
  assert.equal(forwarded, 5);
  assert.deepEqual(answers.slice(0, 5), [undefined, undefined, undefined, undefined, undefined]);
  assert.equal(answers[5]!.status, 429);
  assert.equal(answers[5]!.headers['retry-after'], '1');
  assert.equal(answers[5]!.headers['ratelimit-limit'], '5');
  assert.equal(answers[5]!.headers['ratelimit-remaining'], '0');
  const other = recordingContext('10.0.0.2');
  await instance.handle(other, next);
  assert.equal(other.answered, undefined, 'another client has its own bucket');
  clock.now += 1000;
  const again = recordingContext('10.0.0.1');
  await instance.handle(again, next);
  assert.equal(again.answered, undefined, 'a second later the bucket has refilled');
});

test('handOver: buckets survive a reload; the store closes only when the last instance using it closes', async () => {
  const clock = { now: 0 };
  let closed = 0;
  const memory = new MemoryBucketStore(1, 1, 100);
  const counted: RateLimitStore = { take: (key, now) => memory.take(key, now), close: () => void closed++ };
  const first = await rateLimit.create(config({ rate: 1, burst: 1 }), apiAt(clock, new SharedStore(counted)));
  const ctx = recordingContext('10.0.0.1');
  await first.handle(ctx, async () => {});
  // As the core does: the successor is built while the old instance still serves.
  const second = await rateLimit.create(config({ rate: 1, burst: 1 }), apiAt(clock, first.handOver!()));
  const discarded = await rateLimit.create(config({ rate: 1, burst: 1 }), apiAt(clock, first.handOver!()));
  await discarded.close?.(); // a reload that failed after this instance was built
  await first.close?.(); // the old generation drained
  assert.equal(closed, 0, 'the store is still in use by the successor');
  const again = recordingContext('10.0.0.1');
  await second.handle(again, async () => {});
  assert.equal(again.answered?.status, 429, 'the token taken before the reload is still gone');
  await second.close?.();
  assert.equal(closed, 1, 'the last user closes it');
});

test('an async store (e.g. Redis) is awaited; the sync memory store is not', async () => {
  let closed = false;
  const asyncStore: RateLimitStore = {
    take: async (key) => ({ allowed: key === 'ok', limit: 1, remaining: 0, retryAfterMs: 1500, resetMs: 1500 }),
    close: () => {
      closed = true;
    },
  };
  const instance = await rateLimit.create(config({ rate: 1, burst: 1 }), apiAt({ now: 0 }, new SharedStore(asyncStore)));
  let forwarded = 0;
  await instance.handle(recordingContext('ok'), async () => {
    forwarded++;
  });
  const refused = recordingContext('no');
  await instance.handle(refused, async () => {
    forwarded++;
  });
  assert.equal(forwarded, 1);
  assert.equal(refused.answered?.headers['retry-after'], '2');
  await instance.close?.();
  assert.equal(closed, true, 'a store nobody else uses is closed with its instance');
});

// End to end: real backends, real proxy, real sockets on 127.0.0.1.

function rateToml(backend: TestBackend, extra: string, rate = 5): string {
  return `
[server]
listen = "127.0.0.1:0"
[pools.web]
backends = [{ url = "${backend.url}" }]
[[pipeline]]
plugin = "rate-limit"
rate = ${rate}
burst = 5
${extra}
`;
}

test('e2e: rate 5, burst 5 — of 20 immediate requests 5 (±1) pass, the rest get 429 with Retry-After; after ~1 s requests pass again', async () => {
  const backend = await startBackend('b1');
  let lb: RunningSwitchyard | undefined;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 20 });
  try {
    lb = await startSwitchyard({ toml: rateToml(backend, '') });
    const url = lb.url;
    const started = performance.now();
    const burst = await Promise.all(Array.from({ length: 20 }, () => request(url, { agent })));
    const tookMs = performance.now() - started;
    const passed = burst.filter((r) => r.status === 200);
    const refused = burst.filter((r) => r.status === 429);
    // A loaded machine spreads the 20 over time, and the bucket rightly refills a token per 200 ms of it.
    const refilled = Math.floor(tookMs / 200);
    assert.ok(passed.length >= 4 && passed.length <= 6 + refilled, `${passed.length} passed in ${Math.round(tookMs)} ms`);
    assert.equal(passed.length + refused.length, 20);
    assert.equal(backend.hits, passed.length, 'refused requests never reach the backend');
    for (const r of refused) {
      assert.match(String(r.headers['retry-after']), /^[1-9]\d*$/);
      assert.equal(r.headers['ratelimit-limit'], '5');
      assert.equal(r.headers['ratelimit-remaining'], '0');
      assert.match(String(r.headers['ratelimit-reset']), /^[1-9]\d*$/);
    }
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const later = await Promise.all(Array.from({ length: 5 }, () => request(url, { agent })));
    assert.ok(later.filter((r) => r.status === 200).length >= 4, `after a second: ${later.map((r) => r.status).join(',')}`);
  } finally {
    agent.destroy();
    await lb?.close();
    await backend.close();
  }
});

test('e2e: the 429 is plain text, or JSON like the core\'s error bodies for a client that accepts only JSON', async () => {
  const backend = await startBackend('b1');
  let lb: RunningSwitchyard | undefined;
  try {
    lb = await startSwitchyard({ toml: rateToml(backend, 'key = "header:X-Api-Key"') });
    const refused = async (accept: string) => {
      const headers = { 'x-api-key': accept, accept };
      for (let i = 0; i < 30; i++) {
        const res = await request(lb!.url, { headers });
        if (res.status === 429) return res;
        assert.equal(res.status, 200, accept);
      }
      return assert.fail(`${accept}: never limited`);
    };
    const json = await refused('application/json');
    assert.equal(json.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(json.body), { error: 'LB_ERR_RATE_LIMITED', message: 'Too Many Requests', status: 429 });
    assert.match(String(json.headers['retry-after']), /^[1-9]\d*$/);
    for (const accept of ['*/*', 'text/html, application/json']) {
      const text = await refused(accept);
      assert.equal(text.headers['content-type'], 'text/plain; charset=utf-8', accept);
      assert.equal(text.body, 'Too Many Requests\n', accept);
    }
  } finally {
    await lb?.close();
    await backend.close();
  }
});

test('e2e: key = "header:X-Api-Key" gives each key its own bucket; a reload with the same table keeps the buckets', async () => {
  const backend = await startBackend('b1');
  let lb: RunningSwitchyard | undefined;
  try {
    // A token per minute: what the test sees of a bucket is what it kept, never
    // a refill (at 5/s a loaded machine took 200 ms between the 429 and the reload's check).
    const toml = rateToml(backend, 'key = "header:X-Api-Key"', 1 / 60);
    lb = await startSwitchyard({ toml });
    const statuses = async (key: string, n: number) => {
      const out: number[] = [];
      for (let i = 0; i < n; i++) out.push((await request(lb!.url, { headers: { 'x-api-key': key } })).status);
      return out;
    };
    assert.deepEqual(await statuses('alice', 6), [200, 200, 200, 200, 200, 429]);
    assert.deepEqual(await statuses('bob', 1), [200]);
    await lb.reload(`${toml}\n# same plugin table, another comment\n`);
    assert.equal((await statuses('alice', 1))[0], 429, 'alice is still limited after the reload');
    // A changed table starts with fresh buckets (and shows that reloads do take effect).
    await lb.reload(rateToml(backend, 'key = "header:X-Api-Key"\nmax_keys = 1000', 1 / 60));
    assert.equal((await statuses('alice', 1))[0], 200, 'new table, new buckets');
  } finally {
    await lb?.close();
    await backend.close();
  }
});
