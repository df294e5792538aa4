import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Ajv } from 'ajv';
import type { HealthDefinition, HealthTarget, PluginApi } from '../../src/index.js';
import httpPlugin, { parseStatusRanges, schema, statusMatches, type HttpCheckConfig } from '../../plugins/http.js';
import { freePort, startBackend, type TestBackend } from '../helpers/backends.js';

/** Through the contract, as the core calls it. */
const httpCheck: HealthDefinition = httpPlugin;
const api = { pluginName: 'http' } as PluginApi;
/** Same options as the core's config loader. */
const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const validate = ajv.compile(schema);
const cli = new URL('../../src/cli.js', import.meta.url).pathname;

function config(table: Record<string, unknown>): HttpCheckConfig {
  const copy = structuredClone(table);
  assert.ok(validate(copy), JSON.stringify(validate.errors));
  return copy as unknown as HttpCheckConfig;
}

function targetOf(backend: { port: number }): HealthTarget {
  return { url: `http://127.0.0.1:${backend.port}`, protocol: 'http:', hostname: '127.0.0.1', port: backend.port };
}

async function check(table: Record<string, unknown>, target: HealthTarget, signal = new AbortController().signal) {
  const instance = await httpCheck.create(config(table), api);
  return instance.check(target, signal);
}

/** A backend that records what the probe sent and answers with `status` and `body`. */
async function recordingBackend(status: number, body = 'ok'): Promise<TestBackend & { seen: http.IncomingMessage[] }> {
  const seen: http.IncomingMessage[] = [];
  const backend = await startBackend('health', (req, res) => {
    seen.push(req);
    res.writeHead(status, { 'content-type': 'text/plain' }).end(body);
  });
  return Object.assign(backend, { seen });
}

test('schema: closed, every property described, defaults GET /healthz expecting 200-399', () => {
  assert.equal(schema.additionalProperties, false);
  for (const [key, property] of Object.entries(schema.properties)) {
    assert.equal(typeof (property as { description?: string }).description, 'string', `${key} has no description`);
  }
  assert.deepEqual(config({}), { path: '/healthz', method: 'GET', expect_status: '200-399' });
  assert.equal(validate({ nonsense: 1 }), false);
});

const statusSpecs = [
  { desc: 'a range', spec: '200-399', ok: true, in: [200, 302, 399], out: [199, 400, 503] },
  { desc: 'one status', spec: '200', ok: true, in: [200], out: [201, 204] },
  { desc: 'a number', spec: 204, ok: true, in: [204], out: [200] },
  { desc: 'a list', spec: '200,204', ok: true, in: [200, 204], out: [201, 203] },
  { desc: 'a list with a range and spaces', spec: '200, 300 - 304', ok: true, in: [200, 300, 304], out: [305] },
  { desc: 'a reversed range', spec: '399-200', ok: true, in: [200, 399], out: [400] },
  { desc: 'a word', spec: 'ok', ok: false },
  { desc: '600', spec: '600', ok: false },
  { desc: 'a trailing comma', spec: '200,', ok: false },
  { desc: 'an open range', spec: '200-', ok: false },
];

for (const row of statusSpecs) {
  test(`expect_status: ${row.desc} (${JSON.stringify(row.spec)}) is ${row.ok ? 'accepted' : 'rejected'}`, () => {
    assert.equal(validate({ expect_status: row.spec }), row.ok, JSON.stringify(validate.errors));
    if (!row.ok) {
      if (typeof row.spec === 'string') assert.throws(() => parseStatusRanges(row.spec), /not a status list/);
      return;
    }
    const ranges = parseStatusRanges(row.spec);
    for (const status of row.in!) assert.equal(statusMatches(ranges, status), true, `${status} matches`);
    for (const status of row.out!) assert.equal(statusMatches(ranges, status), false, `${status} does not match`);
  });
}

test('a 200 from path is healthy; the reason names the status', async (t) => {
  const backend = await recordingBackend(200);
  t.after(() => backend.close());
  assert.deepEqual(await check({}, targetOf(backend)), { healthy: true, reason: 'status 200' });
  assert.equal(backend.seen[0]!.url, '/healthz');
  assert.equal(backend.seen[0]!.method, 'GET');
  assert.equal(backend.seen[0]!.headers.host, `127.0.0.1:${backend.port}`);
});

test('a status outside expect_status is unhealthy with reason "status NNN"', async (t) => {
  const backend = await recordingBackend(503);
  t.after(() => backend.close());
  assert.deepEqual(await check({}, targetOf(backend)), { healthy: false, reason: 'status 503' });
  assert.deepEqual(await check({ expect_status: '500-503' }, targetOf(backend)), { healthy: true, reason: 'status 503' });
});

test('path, method and host are sent as configured', async (t) => {
  const backend = await recordingBackend(204, '');
  t.after(() => backend.close());
  const result = await check({ path: '/ready?deep=1', method: 'HEAD', host: 'app.example.test', expect_status: '204' }, targetOf(backend));
  assert.deepEqual(result, { healthy: true, reason: 'status 204' });
  const req = backend.seen[0]!;
  assert.equal(req.url, '/ready?deep=1');
  assert.equal(req.method, 'HEAD');
  assert.equal(req.headers.host, 'app.example.test');
});

test('expect_body: healthy only when the body contains it', async (t) => {
  const backend = await recordingBackend(200, '{"status":"ok","db":"up"}');
  t.after(() => backend.close());
  assert.deepEqual(await check({ expect_body: '"db":"up"' }, targetOf(backend)), { healthy: true, reason: 'status 200, body contains ""db":"up""' });
  assert.deepEqual(await check({ expect_body: 'ready' }, targetOf(backend)), { healthy: false, reason: 'body does not contain "ready"' });
});

test('expect_body is searched in the first 64KB only: an endless body does not hold the probe', async (t) => {
  const backend = await startBackend('stream', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    const chunk = 'x'.repeat(16 * 1024);
    const timer = setInterval(() => res.write(chunk), 1);
    res.on('close', () => clearInterval(timer));
  });
  t.after(() => backend.close());
  const result = await check({ expect_body: 'never' }, targetOf(backend));
  assert.deepEqual(result, { healthy: false, reason: 'body does not contain "never" in its first 64KB' });
});

test('a closed port rejects with ECONNREFUSED', async () => {
  const port = await freePort();
  await assert.rejects(check({}, targetOf({ port })), { code: 'ECONNREFUSED' });
});

test('the signal aborts a probe to a backend that never answers', async (t) => {
  const backend = await startBackend('hang', () => {});
  t.after(() => backend.close());
  const controller = new AbortController();
  const started = performance.now();
  setTimeout(() => controller.abort(new DOMException('timed out', 'TimeoutError')), 50);
  await assert.rejects(check({}, targetOf(backend), controller.signal));
  assert.ok(performance.now() - started < 1000);
});

test('lb validate: the shipped lb.toml passes; a bad expect_status is reported at its line', async (t) => {
  const exec = promisify(execFile);
  const shipped = await exec(process.execPath, [cli, 'validate', '-c', new URL('../../../lb.toml', import.meta.url).pathname]);
  assert.match(shipped.stdout, /valid/);

  const dir = await mkdtemp(join(tmpdir(), 'switchyard-http-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'lb.toml');
  await writeFile(
    file,
    ['[pools.web]', 'backends = [{ url = "http://127.0.0.1:8001" }]', '[pools.web.health]', 'checker = "http"', 'expect_status = "2xx"', ''].join('\n'),
  );
  const bad = await exec(process.execPath, [cli, 'validate', '-c', file]).then(
    () => assert.fail('validate accepted expect_status = "2xx"'),
    (err: { code: number; stderr: string }) => err,
  );
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /lb\.toml:5:\d+ pools\.web\.health\.expect_status/);
});
