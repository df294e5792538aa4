import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ajv } from 'ajv';
import type { MiddlewareDefinition, PluginApi, RequestContext, ResponseHead } from '../../src/index.js';
import headersPlugin, {
  applyHeaderOps,
  compileHeaderOps,
  MAX_LISTED_ALIAS_HYPHENS,
  schema,
  underscoreSpellings,
  type HeaderMap,
  type HeadersConfig,
} from '../../plugins/headers.js';
import { startSwitchyard, type RunningSwitchyard } from '../../src/testing.js';
import { startBackend } from '../helpers/backends.js';
import { request } from '../helpers/http-client.js';
import { sendRaw, startCapturingBackend } from '../helpers/raw-http.js';
import { assertDescribed } from '../helpers/schema-checks.js';

/** Through the contract, as the core calls it. */
const headers: MiddlewareDefinition = headersPlugin;
const api = { pluginName: 'headers', clock: { now: () => 0 } } as PluginApi;
/** Same options as the core's config loader. */
const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const validate = ajv.compile(schema);

function config(table: unknown): HeadersConfig {
  const copy = structuredClone(table);
  assert.ok(validate(copy), JSON.stringify(validate.errors));
  return copy as HeadersConfig;
}

test('schema: closed, described, defaults filled', () => {
  assertDescribed(schema);
  assert.deepEqual(config({}), {
    request: { set: {}, add: {}, remove: [] },
    response: { set: {}, add: {}, remove: [] },
  });
});

const badTables = [
  { desc: 'unknown top-level key', table: { requests: {} } },
  { desc: 'unknown op', table: { request: { replace: {} } } },
  { desc: 'header name with a space', table: { request: { set: { 'X Bad': '1' } } } },
  { desc: 'value with CR LF (header injection)', table: { response: { set: { 'X-A': 'a\r\nSet-Cookie: x=1' } } } },
  { desc: 'set value not a string', table: { request: { set: { 'X-A': 1 } } } },
  { desc: 'empty add list', table: { request: { add: { 'X-A': [] } } } },
  { desc: 'remove not a list', table: { request: { remove: 'X-A' } } },
  { desc: 'X-Forwarded-For set on the request', table: { request: { set: { 'X-Forwarded-For': '1.2.3.4' } } } },
  { desc: 'x-forwarded-proto removed from the request', table: { request: { remove: ['x-forwarded-proto'] } } },
  { desc: 'Transfer-Encoding added to the request', table: { request: { add: { 'Transfer-Encoding': 'chunked' } } } },
  { desc: 'CONTENT-LENGTH set on the response', table: { response: { set: { 'CONTENT-LENGTH': '3' } } } },
  { desc: 'TE removed from the request', table: { request: { remove: ['te'] } } },
  { desc: 'X_Forwarded_For set on the request (a backend may read _ as -)', table: { request: { set: { X_Forwarded_For: '1.2.3.4' } } } },
  { desc: 'x-forwarded_host removed from the request', table: { request: { remove: ['x-forwarded_host'] } } },
  { desc: 'Content_Length set on the request', table: { request: { set: { Content_Length: '3' } } } },
  { desc: 'value with a control character Node cannot write', table: { request: { set: { 'X-A': 'a\u0001b' } } } },
  { desc: 'value with DEL', table: { response: { add: { 'X-A': ['ok', 'a\u007fb'] } } } },
  { desc: 'value with a character beyond U+00FF (Node cannot write it)', table: { response: { set: { 'X-Check': '✓ ok' } } } },
  { desc: 'Expect set on the request (the core never forwards it)', table: { request: { set: { Expect: '100-continue' } } } },
  { desc: 'a second Host added to the request', table: { request: { add: { HOST: 'b.example' } } } },
];
const goodTables = [
  { desc: 'reference route table', table: { request: { set: { 'X-Api': '1' } } } },
  { desc: 'reference global table', table: { request: { set: { 'X-Served-By': 'lb' }, remove: ['X-Debug'] }, response: { set: { 'X-Frame-Options': 'DENY' }, remove: ['Server'] } } },
  { desc: 'add with a list', table: { response: { add: { 'Set-Cookie': ['a=1', 'b=2'] } } } },
  { desc: 'values with tab and Latin-1', table: { response: { set: { 'X-A': 'caf\u00e9\tok' } } } },
  { desc: 'Expect on the response', table: { response: { set: { Expect: 'x' } } } },
  { desc: 'Host set on the request', table: { request: { set: { Host: 'internal.example' } } } },
  { desc: 'Expect removed from the request (a config from before Expect was managed: harmless, the core drops it)', table: { request: { remove: ['Expect'] } } },
  { desc: 'names that only start like a managed one', table: { request: { set: { 'TE-Custom': '1', 'Connection-Id': '2', 'X-Forwarded': '3' } } } },
  { desc: 'X-Forwarded-Host on the response', table: { response: { set: { 'X-Forwarded-Host': 'a' } } } },
];
for (const { desc, table } of goodTables) {
  test(`schema accepts: ${desc}`, () => {
    assert.equal(validate(structuredClone(table)), true, JSON.stringify(validate.errors));
  });
}

for (const { desc, table } of badTables) {
  test(`schema rejects: ${desc}`, () => {
    assert.equal(validate(structuredClone(table)), false);
  });
}

const refused: { desc: string; ops: Parameters<typeof compileHeaderOps>[0]; direction: 'request' | 'response'; match: RegExp }[] = [
  { desc: 'X-Forwarded-For set on the request', ops: { set: { 'X-Forwarded-For': '1.2.3.4' } }, direction: 'request', match: /X-Forwarded/ },
  { desc: 'x-forwarded-proto removed from the request', ops: { remove: ['x-forwarded-proto'] }, direction: 'request', match: /X-Forwarded/ },
  { desc: 'Transfer-Encoding added', ops: { add: { 'Transfer-Encoding': 'chunked' } }, direction: 'request', match: /core manages/ },
  { desc: 'Content-Length set on the response', ops: { set: { 'Content-Length': '3' } }, direction: 'response', match: /core manages/ },
  { desc: 'Connection removed from the response', ops: { remove: ['Connection'] }, direction: 'response', match: /core manages/ },
  { desc: 'X_Forwarded_Proto set on the request', ops: { set: { X_Forwarded_Proto: 'https' } }, direction: 'request', match: /X-Forwarded/ },
  { desc: 'Transfer_Encoding added to the request', ops: { add: { Transfer_Encoding: 'chunked' } }, direction: 'request', match: /core manages/ },
  { desc: 'Expect set on the request', ops: { set: { Expect: '100-continue' } }, direction: 'request', match: /core manages/ },
  { desc: 'Host added to the request', ops: { add: { Host: 'b.example' } }, direction: 'request', match: /exactly one Host/ },
  { desc: 'a value beyond U+00FF', ops: { set: { 'X-Check': '✓' } }, direction: 'response', match: /cannot be sent as a header value/ },
  { desc: 'a control character in an added value', ops: { add: { 'X-A': ['ok', 'a\u0000b'] } }, direction: 'request', match: /cannot be sent as a header value/ },
];
for (const { desc, ops, direction, match } of refused) {
  test(`create() refuses: ${desc}`, () => {
    assert.throws(() => compileHeaderOps(ops, direction), match);
  });
}

test('create() accepts Expect in request.remove: harmless, and configs from before it was managed keep loading', () => {
  assert.doesNotThrow(() => compileHeaderOps({ remove: ['Expect'] }, 'request'));
});

test('X-Forwarded-* is allowed on responses (the core sets it only upstream)', () => {
  assert.deepEqual(compileHeaderOps({ set: { 'X-Forwarded-Host': 'a' } }, 'response').setNames, ['x-forwarded-host']);
});

test('compile: names lower-cased, lists kept, later spelling of a set name wins', () => {
  const ops = compileHeaderOps({ set: { 'X-A': '1', 'x-a': '2' }, add: { Via: ['a', 'b'], 'X-One': 'x' }, remove: ['Server', 'server'] }, 'response');
  assert.deepEqual(ops.setNames, ['x-a']);
  assert.deepEqual(ops.setValues, ['2']);
  assert.deepEqual(ops.addNames, ['via', 'x-one']);
  assert.deepEqual(ops.addValues, [['a', 'b'], 'x']);
  assert.deepEqual(ops.removeNames, ['server']);
  assert.equal(ops.empty, false);
  assert.equal(compileHeaderOps(undefined, 'request').empty, true);
});

test('underscoreSpellings: every spelling with _ for some -, the name itself excluded', () => {
  assert.deepEqual(underscoreSpellings('x-debug'), ['x_debug']);
  assert.deepEqual(underscoreSpellings('x-user-id').sort(), ['x-user_id', 'x_user-id', 'x_user_id']);
  assert.deepEqual(underscoreSpellings('server'), []);
  assert.equal(underscoreSpellings('a-b-c-d-e').length, 2 ** 4 - 1);
});

test('compile: request names removed or set are also removed in their _ spellings; responses are left alone', () => {
  const request = compileHeaderOps({ remove: ['X-Debug', 'Server'], set: { 'X-User-Id': '1' }, add: { 'X-Tag': 'a' } }, 'request');
  assert.deepEqual([...request.aliasNames].sort(), ['x-user_id', 'x_debug', 'x_user-id', 'x_user_id']);
  assert.equal(request.scannedAliases, undefined);
  const spelledWithUnderscore = compileHeaderOps({ remove: ['X_Debug'] }, 'request');
  assert.deepEqual(spelledWithUnderscore.aliasNames, ['x-debug'], 'the hyphen spelling of a name configured with _ goes too');
  const long = compileHeaderOps({ remove: ['X-A-B-C-D-E'] }, 'request');
  assert.deepEqual(long.aliasNames, []);
  assert.deepEqual([...long.scannedAliases!], ['x-a-b-c-d-e'], `past ${MAX_LISTED_ALIAS_HYPHENS} hyphens the names are scanned`);
  assert.deepEqual(compileHeaderOps({ remove: ['X_A_B_C_D_E'] }, 'request').aliasNames, ['x-a-b-c-d-e'], 'the hyphen spelling is listed');
  const response = compileHeaderOps({ remove: ['X-Debug'], set: { 'X-User-Id': '1' } }, 'response');
  assert.deepEqual(response.aliasNames, []);
  assert.equal(response.scannedAliases, undefined);
});

const requestCases: { desc: string; ops: Parameters<typeof compileHeaderOps>[0]; before: HeaderMap; after: HeaderMap }[] = [
  {
    desc: 'remove takes the _ spellings with it',
    ops: { remove: ['X-User-Id'] },
    before: { 'x-user-id': 'a', x_user_id: 'forged', 'x_user-id': 'forged', 'x-user_id': 'forged', 'x-user-idx': 'kept', x_other: 'kept' },
    after: { 'x-user-idx': 'kept', x_other: 'kept' },
  },
  {
    desc: 'set replaces the _ spellings too',
    ops: { set: { 'X-User': 'lb' } },
    before: { x_user: 'forged', 'x-user': 'client' },
    after: { 'x-user': 'lb' },
  },
  {
    desc: 'add keeps what is there, _ spellings included',
    ops: { add: { 'X-Tag': 'lb' } },
    before: { x_tag: 'client' },
    after: { x_tag: 'client', 'x-tag': 'lb' },
  },
  {
    desc: 'a name with many hyphens: its _ spellings are found by a scan',
    ops: { remove: ['X-A-B-C-D-E'] },
    before: { 'x-a-b-c-d-e': '1', 'x_a-b_c-d_e': '2', x_a_b_c_d_e: '3', 'x-a-b-c-d-f': 'kept', 'x_a_b_c_d_e_f': 'kept' },
    after: { 'x-a-b-c-d-f': 'kept', x_a_b_c_d_e_f: 'kept' },
  },
];
for (const { desc, ops, before, after } of requestCases) {
  test(`apply (request): ${desc}`, () => {
    const map = structuredClone(before);
    applyHeaderOps(compileHeaderOps(ops, 'request'), map);
    assert.deepEqual(map, after);
  });
}

const cases: { desc: string; ops: Parameters<typeof compileHeaderOps>[0]; before: HeaderMap; after: HeaderMap }[] = [
  { desc: 'set adds a missing header', ops: { set: { 'X-Served-By': 'lb' } }, before: {}, after: { 'x-served-by': 'lb' } },
  { desc: 'set replaces a string and a list', ops: { set: { 'X-A': 'new', 'Set-Cookie': 'c=1' } }, before: { 'x-a': 'old', 'set-cookie': ['a=1', 'b=2'] }, after: { 'x-a': 'new', 'set-cookie': 'c=1' } },
  { desc: 'add to a missing header', ops: { add: { Via: '1.1 lb' } }, before: {}, after: { via: '1.1 lb' } },
  { desc: 'add to a string makes a list', ops: { add: { Via: '1.1 lb' } }, before: { via: '1.0 a' }, after: { via: ['1.0 a', '1.1 lb'] } },
  { desc: 'add a list to a list', ops: { add: { 'Set-Cookie': ['c=3', 'd=4'] } }, before: { 'set-cookie': ['a=1'] }, after: { 'set-cookie': ['a=1', 'c=3', 'd=4'] } },
  { desc: 'add a list to a missing header', ops: { add: { 'X-L': ['1', '2'] } }, before: {}, after: { 'x-l': ['1', '2'] } },
  { desc: 'add a list to a string', ops: { add: { 'X-L': ['1', '2'] } }, before: { 'x-l': '0' }, after: { 'x-l': ['0', '1', '2'] } },
  { desc: 'remove, whatever the case', ops: { remove: ['X-Debug', 'SERVER'] }, before: { 'x-debug': '1', server: 'nginx', keep: 'y' }, after: { keep: 'y' } },
  { desc: 'remove a header that is not there', ops: { remove: ['X-Nope'] }, before: { a: '1' }, after: { a: '1' } },
  { desc: 'remove then set: the set value stays', ops: { remove: ['Server'], set: { Server: 'lb' } }, before: { server: 'nginx' }, after: { server: 'lb' } },
  { desc: 'set then add: add appends to the set value', ops: { set: { 'X-A': '1' }, add: { 'X-A': '2' } }, before: { 'x-a': '0' }, after: { 'x-a': ['1', '2'] } },
  { desc: 'undefined entries (request maps) count as missing', ops: { add: { 'X-A': '1' } }, before: { 'x-a': undefined }, after: { 'x-a': '1' } },
];
for (const { desc, ops, before, after } of cases) {
  test(`apply: ${desc}`, () => {
    const map = structuredClone(before);
    applyHeaderOps(compileHeaderOps(ops, 'response'), map);
    assert.deepEqual(map, after);
  });
}

test('apply never hands out the configured list: later appends do not change the config', () => {
  const ops = compileHeaderOps({ add: { 'X-L': ['1', '2'] } }, 'request');
  const first: HeaderMap = {};
  applyHeaderOps(ops, first);
  (first['x-l'] as string[]).push('3');
  const second: HeaderMap = {};
  applyHeaderOps(ops, second);
  assert.deepEqual(second, { 'x-l': ['1', '2'] });
});

function fakeContext(requestHeaders: HeaderMap): RequestContext {
  return { headers: requestHeaders, response: undefined } as unknown as RequestContext;
}

test('handle: request ops before next(), response ops after it', async () => {
  const instance = await headers.create(
    config({
      request: { set: { 'X-Served-By': 'lb' }, remove: ['X-Debug'], add: { Via: 'lb' } },
      response: { set: { 'X-Frame-Options': 'DENY' }, remove: ['Server'] },
    }),
    api,
  );
  const ctx = fakeContext({ 'x-debug': '1', via: 'client' });
  let seenUpstream: HeaderMap | undefined;
  await instance.handle(ctx, async () => {
    seenUpstream = { ...ctx.headers };
    const response: ResponseHead = { status: 200, headers: { server: 'nginx', 'content-type': 'text/plain' }, source: 'backend' };
    ctx.response = response;
  });
  assert.deepEqual(seenUpstream, { 'x-served-by': 'lb', via: ['client', 'lb'] });
  assert.deepEqual(ctx.response!.headers, { 'content-type': 'text/plain', 'x-frame-options': 'DENY' });
});

test('handle: no response ops → next() promise passed through; no response → nothing to do', async () => {
  const requestOnly = await headers.create(config({ request: { set: { 'X-A': '1' } } }), api);
  const ctx = fakeContext({});
  const marker = Promise.resolve();
  assert.equal(requestOnly.handle(ctx, () => marker), marker);
  const responseOnly = await headers.create(config({ response: { set: { 'X-A': '1' } } }), api);
  await responseOnly.handle(ctx, async () => {});
  assert.equal(ctx.response, undefined);
});

test('handle: next() failing propagates', async () => {
  const instance = await headers.create(config({ response: { set: { 'X-A': '1' } } }), api);
  await assert.rejects(instance.handle(fakeContext({}), () => Promise.reject(new Error('boom'))), /boom/);
});

// End to end: real backends, real proxy, real sockets on 127.0.0.1.

test('e2e: set/add/remove both ways, seen by the backend and by the client; route pipelines add their own', async () => {
  const backend = await startBackend('b1', (req, res) => {
    res.setHeader('server', 'nginx/1.25');
    res.setHeader('x-powered-by', 'php');
    res.setHeader('x-backend-tag', 'kept');
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(req.headers));
  });
  let lb: RunningSwitchyard | undefined;
  try {
    lb = await startSwitchyard({
      toml: `
[server]
listen = "127.0.0.1:0"
[pools.web]
backends = [{ url = "${backend.url}" }]

[[routes]]
match = { path_prefix = "/v1/" }
pool = "web"
  [[routes.pipeline]]
  plugin = "headers"
  request.set = { "X-Api" = "1" }

[[routes]]
match = { path_prefix = "/" }
pool = "web"

[[pipeline]]
plugin = "headers"
request.set = { "X-Served-By" = "lb", "X-Overwritten" = "by-lb" }
request.add = { "X-Tag" = ["lb-1", "lb-2"] }
request.remove = ["X-Debug"]
response.set = { "X-Frame-Options" = "DENY" }
response.add = { "X-Backend-Tag" = "added" }
response.remove = ["Server", "x-powered-by"]
`,
    });
    const res = await request(`${lb.url}/v1/users`, {
      headers: { 'x-debug': '1', 'x-tag': 'client', 'x-overwritten': 'by-client', 'x-untouched': 'yes' },
    });
    assert.equal(res.status, 200);
    const seen = JSON.parse(res.body) as Record<string, string>;
    assert.equal(seen['x-served-by'], 'lb');
    assert.equal(seen['x-overwritten'], 'by-lb');
    assert.equal(seen['x-tag'], 'client, lb-1, lb-2', 'appended after the client value');
    assert.equal(seen['x-debug'], undefined);
    assert.equal(seen['x-untouched'], 'yes');
    assert.equal(seen['x-api'], '1', 'route pipeline');
    assert.ok(seen['x-forwarded-for'], 'X-Forwarded-* left to the core');

    assert.equal(res.headers['x-frame-options'], 'DENY');
    assert.equal(res.headers.server, undefined);
    assert.equal(res.headers['x-powered-by'], undefined);
    assert.equal(res.headers['x-backend-tag'], 'kept, added');
    assert.equal(res.headers['content-type'], 'application/json');

    const other = JSON.parse((await request(`${lb.url}/other`)).body) as Record<string, string>;
    assert.equal(other['x-api'], undefined, 'the route pipeline applies to its route only');
    assert.equal(other['x-served-by'], 'lb');
  } finally {
    await lb?.close();
    await backend.close();
  }
});

test('e2e: response headers also apply to local answers (a 429 from rate-limit)', async () => {
  const backend = await startBackend('b1');
  let lb: RunningSwitchyard | undefined;
  try {
    lb = await startSwitchyard({
      toml: `
[server]
listen = "127.0.0.1:0"
[pools.web]
backends = [{ url = "${backend.url}" }]
[[pipeline]]
plugin = "headers"
response.set = { "X-Frame-Options" = "DENY" }
[[pipeline]]
plugin = "rate-limit"
rate = 1
burst = 1
`,
    });
    assert.equal((await request(lb.url)).status, 200);
    const limited = await request(lb.url);
    assert.equal(limited.status, 429);
    assert.equal(limited.headers['x-frame-options'], 'DENY');
  } finally {
    await lb?.close();
    await backend.close();
  }
});

test('e2e: a client cannot slip a removed or set request header past the plugin by spelling it with _', async () => {
  const backend = await startCapturingBackend();
  let lb: RunningSwitchyard | undefined;
  try {
    lb = await startSwitchyard({
      toml: `
[server]
listen = "127.0.0.1:0"
[pools.web]
backends = [{ url = "${backend.url}" }]
[[pipeline]]
plugin = "headers"
request.remove = ["X-Debug"]
request.set = { "X-Authenticated-User" = "" }
`,
    });
    const result = await sendRaw(
      lb.port,
      'GET / HTTP/1.1\r\nHost: a\r\nX_Debug: 1\r\nX_Authenticated_User: admin\r\nX-Authenticated_User: admin\r\nX_Other: kept\r\n\r\n',
      { responses: 1 },
    );
    assert.equal(result.responses[0]?.status, 200, result.text);
    const seen = backend.seen.at(-1)!;
    assert.equal(seen.headers['x-authenticated-user'], '');
    assert.equal(seen.headers.x_other, 'kept');
    assert.doesNotMatch(seen.rawHeaders.join('\n'), /admin|X_Debug/i, JSON.stringify(seen.rawHeaders));
  } finally {
    await lb?.close();
    await backend.close();
  }
});

test('e2e: a value Node could not write (beyond U+00FF, a control character) is refused at load, with its line — not on every request', async () => {
  const backend = await startBackend('b1');
  try {
    for (const value of ['\\u2713 ok', 'a\\u0001b']) {
      const toml = `
[server]
listen = "127.0.0.1:0"
[pools.web]
backends = [{ url = "${backend.url}" }]
[[pipeline]]
plugin = "headers"
response.set = { "X-Check" = "${value}" }
`;
      let lb: RunningSwitchyard | undefined;
      try {
        lb = await startSwitchyard({ toml });
      } catch (err) {
        const issues = (err as { issues?: { line: number; keyPath: string }[] }).issues ?? [];
        assert.ok(
          issues.some((i) => i.line === 8 && i.keyPath === 'pipeline[0].response.set.X-Check'),
          `refused with its line and key path: ${(err as Error).message}`,
        );
        continue;
      }
      // Before the fix the first request threw in writeHead and took the process down.
      await lb.close();
      assert.fail(`response.set = "${value}" was accepted`);
    }
  } finally {
    await backend.close();
  }
});
