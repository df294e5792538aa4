import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { Ajv } from 'ajv';
import type { Candidate, MiddlewareDefinition, PluginApi, PoolView, RequestContext, ResponseHead } from '../../src/index.js';
import stickyPlugin, {
  appendSetCookie,
  cookieAttributes,
  cookieValueFor,
  schema,
  StickyCookieCodec,
  type StickySessionConfig,
} from '../../plugins/sticky-session.js';
import { startSwitchyard, type RunningSwitchyard } from '../../src/testing.js';
import { startBackends, type TestBackend } from '../helpers/backends.js';
import { request, type TestResponse } from '../helpers/http-client.js';
import { assertDescribed } from '../helpers/schema-checks.js';

/** Through the contract, as the core calls it. */
const sticky: MiddlewareDefinition = stickyPlugin;
const api = { pluginName: 'sticky-session', clock: { now: () => 0 } } as PluginApi;
/** Same options as the core's config loader. */
const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const validate = ajv.compile(schema);

function config(table: unknown): StickySessionConfig {
  const copy = structuredClone(table);
  assert.ok(validate(copy), JSON.stringify(validate.errors));
  return copy as unknown as StickySessionConfig;
}

function candidates(...urls: string[]): Candidate[] {
  return urls.map((url) => ({ url, weight: 1, activeConnections: 0, healthy: true }));
}

test('schema: closed, described, defaults filled', () => {
  assertDescribed(schema);
  assert.deepEqual(config({}), { cookie: 'lb_sticky', secure: false, same_site: 'Lax', path: '/' });
});

const tables = [
  { desc: 'reference table', table: { cookie: 'lb_sticky', max_age: '1h' }, ok: true },
  { desc: 'every attribute', table: { cookie: 'srv', max_age: '30m', secure: true, same_site: 'None', path: '/app', domain: 'example.com', secret: '0123456789abcdef' }, ok: true },
  { desc: 'leading-dot domain', table: { domain: '.example.com' }, ok: true },
  { desc: 'cookie name with a space', table: { cookie: 'lb sticky' }, ok: false },
  { desc: 'max_age not a duration', table: { max_age: 3600 }, ok: false },
  { desc: 'same_site lower-case', table: { same_site: 'lax' }, ok: false },
  { desc: 'path without a leading slash', table: { path: 'app' }, ok: false },
  { desc: 'path with a semicolon', table: { path: '/a;Domain=evil' }, ok: false },
  { desc: 'domain with a semicolon', table: { domain: 'a.com; Secure' }, ok: false },
  { desc: 'short secret', table: { secret: 'short' }, ok: false },
  { desc: 'unknown property', table: { httponly: false }, ok: false },
];
for (const { desc, table, ok } of tables) {
  test(`schema ${ok ? 'accepts' : 'rejects'}: ${desc}`, () => {
    assert.equal(validate(structuredClone(table)), ok, JSON.stringify(validate.errors));
  });
}

const refused = [
  { desc: 'same_site = "None" without secure', table: { same_site: 'None' }, match: /secure = true/ },
  { desc: 'max_age under a second', table: { max_age: '500ms' }, match: /at least "1s"/ },
];
for (const { desc, table, match } of refused) {
  test(`create() refuses: ${desc}`, async () => {
    await assert.rejects(async () => sticky.create(config(table), api), match);
  });
}

test('cookie value: stable, short, url-safe, does not show the address, differs per URL and per secret', () => {
  const url = 'http://10.0.0.7:8080';
  const value = cookieValueFor(url);
  assert.match(value, /^[A-Za-z0-9_-]{16}$/);
  assert.equal(cookieValueFor(url), value, 'same URL, same value (any instance, any restart)');
  assert.ok(!value.includes('10.0.0.7') && !value.includes('8080'));
  assert.notEqual(cookieValueFor('http://10.0.0.8:8080'), value);
  assert.notEqual(cookieValueFor(url, 'another secret!!'), value);
});

test('codec: a value maps back to its backend only among the pool backends', () => {
  const pool = candidates('http://10.0.0.1:80', 'http://10.0.0.2:80', 'http://10.0.0.3:80');
  const issuer = new StickyCookieCodec();
  const value = issuer.valueFor('http://10.0.0.2:80');
  // A fresh codec (a new generation, another worker) has seen no URL yet.
  const reader = new StickyCookieCodec();
  assert.equal(reader.lookup(value, pool), pool[1]);
  assert.equal(reader.lookup(value, pool), pool[1], 'and again, from its cache');
  assert.equal(reader.lookup(value, [pool[0]!, pool[2]!]), undefined, 'backend no longer in the pool');
  assert.equal(reader.lookup('AAAAAAAAAAAAAAAA', pool), undefined, 'unknown value');
  assert.equal(reader.lookup(value, []), undefined, 'empty pool');
  assert.equal(new StickyCookieCodec('another secret!!').lookup(value, pool), undefined, 'other secret');
});

const attributeCases = [
  { desc: 'defaults, session cookie', options: { path: '/', secure: false, sameSite: 'Lax' as const }, out: '; Path=/; HttpOnly; SameSite=Lax' },
  { desc: 'max age', options: { path: '/', maxAgeSeconds: 3600, secure: false, sameSite: 'Lax' as const }, out: '; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax' },
  {
    desc: 'everything',
    options: { path: '/app', maxAgeSeconds: 60, domain: 'example.com', secure: true, sameSite: 'None' as const },
    out: '; Path=/app; Max-Age=60; Domain=example.com; HttpOnly; Secure; SameSite=None',
  },
];
for (const { desc, options, out } of attributeCases) {
  test(`cookie attributes: ${desc}`, () => {
    assert.equal(cookieAttributes(options), out);
  });
}

const appendCases: { desc: string; before: Record<string, string | string[]>; after: Record<string, string | string[]> }[] = [
  { desc: 'no Set-Cookie yet', before: {}, after: { 'set-cookie': 'lb=1' } },
  { desc: 'one from the backend', before: { 'set-cookie': 'app=x' }, after: { 'set-cookie': ['app=x', 'lb=1'] } },
  { desc: 'several from the backend', before: { 'set-cookie': ['app=x', 'b=y'] }, after: { 'set-cookie': ['app=x', 'b=y', 'lb=1'] } },
];
for (const { desc, before, after } of appendCases) {
  test(`appendSetCookie: ${desc}`, () => {
    const headers = structuredClone(before);
    appendSetCookie(headers, 'lb=1');
    assert.deepEqual(headers, after);
  });
}

interface FakeContext extends RequestContext {
  pinned?: string;
}

function fakeContext(pool: PoolView, cookie: string | undefined): FakeContext {
  const ctx = {
    headers: cookie === undefined ? {} : { cookie },
    pool,
    response: undefined,
    backend: undefined,
    pin(url: string) {
      ctx.pinned = url;
    },
  } as unknown as FakeContext;
  return ctx;
}

/** next(): serves from the pinned backend if it is in the pool and healthy, else from `fallback`. */
function serve(ctx: FakeContext, fallback: Candidate, headers: Record<string, string | string[]> = {}, source: ResponseHead['source'] = 'backend') {
  return async () => {
    const pinned = ctx.pool.backends.find((b) => b.url === ctx.pinned && b.healthy);
    ctx.backend = source === 'backend' ? (pinned ?? fallback) : undefined;
    ctx.response = { status: 200, headers, source };
  };
}

const pool: PoolView = { name: 'web', backends: candidates('http://10.0.0.1:80', 'http://10.0.0.2:80') };
const b1 = pool.backends[0]!;
const b2 = pool.backends[1]!;
const v1 = cookieValueFor(b1.url);
const v2 = cookieValueFor(b2.url);
const line2 = `lb_sticky=${v2}; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax`;

const flows: {
  desc: string;
  pool: PoolView;
  cookie: string | undefined;
  fallback: Candidate;
  backendCookies?: string | string[];
  source?: ResponseHead['source'];
  pinned: string | undefined;
  setCookie: string | string[] | undefined;
}[] = [
  { desc: 'no cookie: strategy picks, client is pinned', pool, cookie: undefined, fallback: b2, pinned: undefined, setCookie: line2 },
  { desc: 'cookie for a healthy backend: pinned, no new cookie', pool, cookie: `lb_sticky=${v1}`, fallback: b2, pinned: b1.url, setCookie: undefined },
  {
    desc: 'cookie for a backend that is down: not pinned, re-pinned to the one that served',
    pool: { name: 'web', backends: [{ ...b1, healthy: false }, b2] },
    cookie: `lb_sticky=${v1}`,
    fallback: b2,
    pinned: undefined,
    setCookie: line2,
  },
  {
    desc: 'cookie for a backend no longer configured: re-pinned',
    pool: { name: 'web', backends: [b2] },
    cookie: `lb_sticky=${v1}`,
    fallback: b2,
    pinned: undefined,
    setCookie: line2,
  },
  { desc: 'garbage cookie: re-pinned', pool, cookie: 'lb_sticky=not-a-backend', fallback: b2, pinned: undefined, setCookie: line2 },
  { desc: "backend's own Set-Cookie kept (string)", pool, cookie: undefined, fallback: b2, backendCookies: 'app=1', pinned: undefined, setCookie: ['app=1', line2] },
  { desc: "backend's own Set-Cookie kept (list)", pool, cookie: undefined, fallback: b2, backendCookies: ['app=1', 'x=2'], pinned: undefined, setCookie: ['app=1', 'x=2', line2] },
  { desc: 'pinned and served there: backend cookies untouched', pool, cookie: `lb_sticky=${v2}`, fallback: b1, backendCookies: 'app=1', pinned: b2.url, setCookie: 'app=1' },
  { desc: 'a local answer (429, error) pins nothing', pool, cookie: undefined, fallback: b2, source: 'local', pinned: undefined, setCookie: undefined },
];
for (const f of flows) {
  test(`handle: ${f.desc}`, async () => {
    const instance = await sticky.create(config({ max_age: '1h' }), api);
    const ctx = fakeContext(f.pool, f.cookie);
    const headers: Record<string, string | string[]> = f.backendCookies === undefined ? {} : { 'set-cookie': structuredClone(f.backendCookies) };
    await instance.handle(ctx, serve(ctx, f.fallback, headers, f.source));
    assert.equal(ctx.pinned, f.pinned);
    assert.deepEqual(ctx.response!.headers['set-cookie'], f.setCookie);
  });
}

test('handle: the cookie a first response sets pins the next request to the same backend', async () => {
  const instance = await sticky.create(config({}), api);
  const first = fakeContext(pool, undefined);
  await instance.handle(first, serve(first, b2));
  const setCookie = first.response!.headers['set-cookie'] as string;
  assert.match(setCookie, /^lb_sticky=[A-Za-z0-9_-]{16}; Path=\/; HttpOnly; SameSite=Lax$/);
  const cookie = setCookie.slice(0, setCookie.indexOf(';'));
  const second = fakeContext(pool, `other=1; ${cookie}`);
  await instance.handle(second, serve(second, b1));
  assert.equal(second.pinned, b2.url);
  assert.equal(second.backend, b2);
  assert.equal(second.response!.headers['set-cookie'], undefined);
});

test('handle: next() failing propagates and sets no cookie', async () => {
  const instance = await sticky.create(config({}), api);
  const ctx = fakeContext(pool, undefined);
  await assert.rejects(instance.handle(ctx, () => Promise.reject(new Error('upstream'))), /upstream/);
  assert.equal(ctx.response, undefined);
});

// End to end: real backends, real proxy, real sockets on 127.0.0.1.

function stickyToml(backends: TestBackend[], extra = ''): string {
  return `
[server]
listen = "127.0.0.1:0"
[pools.web]
strategy = "round-robin"
backends = [${backends.map((b) => `{ url = "${b.url}" }`).join(', ')}]
[[pipeline]]
plugin = "sticky-session"
cookie = "lb_sticky"
max_age = "1h"
${extra}
[[pipeline]]
plugin = "retry"
`;
}

function cookieOf(res: TestResponse): string | undefined {
  const line = res.headers['set-cookie']?.find((l) => l.startsWith('lb_sticky='));
  return line === undefined ? undefined : line.slice(0, line.indexOf(';'));
}

test('e2e: 30 requests with the cookie reach one backend; when it stops, the next one succeeds elsewhere with a new cookie', async () => {
  const backends = await startBackends(3);
  let lb: RunningSwitchyard | undefined;
  try {
    lb = await startSwitchyard({ toml: stickyToml(backends) });
    // Without the cookie, round-robin would spread these 31 requests over all three backends.
    const first = await request(lb.url);
    assert.equal(first.status, 200);
    const cookie = cookieOf(first);
    assert.ok(cookie, `first response sets the cookie: ${JSON.stringify(first.headers['set-cookie'])}`);
    const line = first.headers['set-cookie']!.find((l) => l.startsWith('lb_sticky='))!;
    assert.match(line, /; Path=\/; Max-Age=3600; HttpOnly; SameSite=Lax$/);
    assert.ok(!line.includes('127.0.0.1'), 'the cookie does not show the address');
    const pinned = first.body;

    const agent = new http.Agent({ keepAlive: true });
    try {
      for (let i = 0; i < 30; i++) {
        const res = await request(lb.url, { agent, headers: { cookie: `theme=dark; ${cookie}` } });
        assert.equal(res.status, 200);
        assert.equal(res.body, pinned, `request ${i} left its backend`);
        assert.equal(res.headers['set-cookie'], undefined, 'no cookie once pinned');
      }
    } finally {
      agent.destroy();
    }
    assert.equal(backends.find((b) => b.name === pinned)!.hits, 31);

    await backends.find((b) => b.name === pinned)!.close();
    const moved = await request(lb.url, { headers: { cookie: cookie! } });
    assert.equal(moved.status, 200, moved.body);
    assert.notEqual(moved.body, pinned);
    const newCookie = cookieOf(moved);
    assert.ok(newCookie && newCookie !== cookie, 're-pinned with a new cookie');
    const again = await request(lb.url, { headers: { cookie: newCookie } });
    assert.equal(again.body, moved.body);
    assert.equal(again.headers['set-cookie'], undefined);
  } finally {
    await lb?.close();
    await Promise.all(backends.map((b) => b.close()));
  }
});

test('e2e: a cookie for a backend removed by a reload re-pins; the backend\'s own cookies are kept', async () => {
  const backends = await startBackends(2);
  for (const b of backends) {
    b.handler = (_req, res) => {
      res.setHeader('set-cookie', ['app=1; Path=/', 'prefs=2; Path=/']);
      res.end(b.name);
    };
  }
  let lb: RunningSwitchyard | undefined;
  try {
    lb = await startSwitchyard({ toml: stickyToml(backends, 'secure = true\nsame_site = "Strict"') });
    const first = await request(lb.url);
    const cookies = first.headers['set-cookie']!;
    assert.equal(cookies.length, 3);
    assert.deepEqual(cookies.slice(0, 2), ['app=1; Path=/', 'prefs=2; Path=/']);
    assert.match(cookies[2]!, /^lb_sticky=[A-Za-z0-9_-]{16}; Path=\/; Max-Age=3600; HttpOnly; Secure; SameSite=Strict$/);
    const cookie = cookieOf(first)!;
    const remaining = backends.find((b) => b.name !== first.body)!;
    await lb.reload(stickyToml([remaining], 'secure = true\nsame_site = "Strict"'));
    const moved = await request(lb.url, { headers: { cookie } });
    assert.equal(moved.body, remaining.name);
    assert.ok(cookieOf(moved) && cookieOf(moved) !== cookie);
  } finally {
    await lb?.close();
    await Promise.all(backends.map((b) => b.close()));
  }
});
