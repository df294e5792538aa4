/** Routing, header handling, streaming and error mapping of the core, end to end. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { startSwitchyard, type RunningSwitchyard } from '../../src/testing.js';
import { freePort, startBackend, type TestBackend } from '../helpers/backends.js';
import { request } from '../helpers/http-client.js';

async function cleanup(lb: RunningSwitchyard | undefined, backends: TestBackend[]): Promise<void> {
  await lb?.close();
  await Promise.all(backends.map((b) => b.close()));
}

test('routes: host (case-insensitive, port ignored), path prefix, methods; first match wins; 404 otherwise', async () => {
  const api = await startBackend('api');
  const web = await startBackend('web');
  const admin = await startBackend('admin');
  let lb: RunningSwitchyard | undefined;
  try {
    lb = await startSwitchyard({
      toml: `
[server]
listen = "127.0.0.1:0"
[pools.api]
backends = [{ url = "${api.url}" }]
[pools.web]
backends = [{ url = "${web.url}" }]
[pools.admin]
backends = [{ url = "${admin.url}" }]
[[routes]]
match = { host = "api.example.test", path_prefix = "/v1/" }
pool = "api"
[[routes]]
match = { path_prefix = "/admin", methods = ["GET"] }
pool = "admin"
[[routes]]
match = { host = "*.web.test" }
pool = "web"
`,
    });
    const cases: { desc: string; path: string; host: string; method?: string; expect: string | number }[] = [
      { desc: 'host and prefix', path: '/v1/users', host: 'API.Example.Test:8080', expect: 'api' },
      { desc: 'host matches but not the prefix', path: '/v2/users', host: 'api.example.test', expect: 404 },
      { desc: 'method allowed', path: '/admin/x', host: 'x', expect: 'admin' },
      { desc: 'method not allowed', path: '/admin/x', host: 'x', method: 'POST', expect: 404 },
      { desc: 'wildcard host', path: '/', host: 'a.web.test', expect: 'web' },
      { desc: 'wildcard does not match the bare domain', path: '/', host: 'web.test', expect: 404 },
    ];
    for (const c of cases) {
      const res = await request(`${lb.url}${c.path}`, { method: c.method, headers: { host: c.host } });
      if (typeof c.expect === 'number') assert.equal(res.status, c.expect, c.desc);
      else assert.equal(res.body, c.expect, c.desc);
    }
    const notFound = await request(`${lb.url}/nowhere`, { headers: { host: 'other.test' } });
    assert.match(notFound.headers['content-type'] ?? '', /text\/plain/);
    assert.doesNotMatch(notFound.body, /at .*\.js/, 'no stack trace');
  } finally {
    await cleanup(lb, [api, web, admin]);
  }
});

test('forwards path and query as received, keeps Host, sets X-Forwarded-*, strips hop-by-hop both ways', async () => {
  let seen: IncomingMessage | undefined;
  const backend = await startBackend('b', (req: IncomingMessage, res: ServerResponse) => {
    seen = req;
    res.writeHead(200, {
      connection: 'keep-alive, x-hop',
      'x-hop': 'secret',
      'keep-alive': 'timeout=5',
      'proxy-connection': 'keep-alive',
      'x-end': 'kept',
    });
    res.end('ok');
  });
  let lb: RunningSwitchyard | undefined;
  try {
    lb = await startSwitchyard({
      toml: `[server]\nlisten = "127.0.0.1:0"\n[pools.web]\nbackends = [{ url = "${backend.url}" }]\n`,
    });
    const res = await request(`${lb.url}/a/b?x=1&y=%20`, {
      headers: {
        host: 'shop.test:8080',
        connection: 'keep-alive, x-drop-me',
        'x-drop-me': '1',
        te: 'trailers',
        'proxy-connection': 'keep-alive',
        'x-forwarded-for': '127.9.9.9',
        'x-keep': 'yes',
      },
    });
    assert.equal(res.status, 200);
    assert.ok(seen);
    assert.equal(seen.url, '/a/b?x=1&y=%20');
    assert.equal(seen.headers.host, 'shop.test:8080');
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1', 'untrusted X-Forwarded-For is replaced');
    assert.equal(seen.headers['x-forwarded-host'], 'shop.test:8080');
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
    assert.equal(seen.headers['x-keep'], 'yes');
    for (const h of ['x-drop-me', 'te', 'proxy-connection']) assert.equal(seen.headers[h], undefined, `${h} reached the backend`);
    for (const h of ['x-hop', 'proxy-connection']) assert.equal(res.headers[h], undefined, `${h} reached the client`);
    // Node states our own keep-alive timeout; the backend's must not leak through.
    assert.notEqual(res.headers['keep-alive'], 'timeout=5');
    assert.equal(res.headers['x-end'], 'kept');
  } finally {
    await cleanup(lb, [backend]);
  }
});

test('a 5 MB POST body arrives intact and a 1 MB response streams back intact', async () => {
  const upload = randomBytes(5 * 1024 * 1024);
  const download = randomBytes(1024 * 1024);
  const backend = await startBackend('b', (req: IncomingMessage, res: ServerResponse) => {
    const hash = createHash('sha256');
    let size = 0;
    req.on('data', (c: Buffer) => {
      hash.update(c);
      size += c.length;
    });
    req.on('end', () => {
      if (req.url === '/download') res.end(download);
      else res.end(`${size} ${hash.digest('hex')}`);
    });
  });
  let lb: RunningSwitchyard | undefined;
  try {
    lb = await startSwitchyard({ toml: `[server]\nlisten = "127.0.0.1:0"\n[pools.web]\nbackends = [{ url = "${backend.url}" }]\n` });
    const res = await request(`${lb.url}/upload`, { method: 'POST', body: upload, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(res.body, `${upload.length} ${createHash('sha256').update(upload).digest('hex')}`);
    const r = await fetch(`${lb.url}/download`);
    const got = Buffer.from(await r.arrayBuffer());
    assert.equal(got.length, download.length);
    assert.ok(got.equals(download));
  } finally {
    await cleanup(lb, [backend]);
  }
});

test('small binary responses (every byte value, written as one latin1 write) arrive byte for byte', async () => {
  const everyByte = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const sizes = [1, 100, 256, 4096, 4097];
  const backend = await startBackend('b', (req: IncomingMessage, res: ServerResponse) => {
    const size = Number(req.url!.slice(1));
    const body = Buffer.alloc(size);
    for (let i = 0; i < size; i++) body[i] = everyByte[(i * 7) % 256]!;
    // Written in two pieces, so the proxy may hold two chunks before the head is written.
    res.setHeader('content-length', size);
    res.write(body.subarray(0, size >> 1));
    res.end(body.subarray(size >> 1));
  });
  let lb: RunningSwitchyard | undefined;
  try {
    lb = await startSwitchyard({ toml: `[server]\nlisten = "127.0.0.1:0"\n[pools.web]\nbackends = [{ url = "${backend.url}" }]\n` });
    for (const size of sizes) {
      const r = await fetch(`${lb.url}/${size}`);
      const got = Buffer.from(await r.arrayBuffer());
      const expected = Buffer.alloc(size);
      for (let i = 0; i < size; i++) expected[i] = everyByte[(i * 7) % 256]!;
      assert.ok(got.equals(expected), `${size} bytes intact`);
    }
  } finally {
    await cleanup(lb, [backend]);
  }
});

test('upstream failures map to statuses: refused → 502, too slow → 504, none healthy → 503 with Retry-After', async () => {
  const slow = await startBackend('slow', (_req: IncomingMessage, res: ServerResponse) => void setTimeout(() => res.end('late'), 2000));
  const closedPort = await freePort();
  let lb: RunningSwitchyard | undefined;
  try {
    lb = await startSwitchyard({
      toml: `
[server]
listen = "127.0.0.1:0"
[pools.refused]
passive_failures = 1
passive_cooldown = "1h"
backends = [{ url = "http://127.0.0.1:${closedPort}" }]
[pools.slow]
response_timeout = "200ms"
backends = [{ url = "${slow.url}" }]
[[routes]]
match = { path_prefix = "/slow" }
pool = "slow"
[[routes]]
pool = "refused"
`,
    });
    const refused = await request(`${lb.url}/x`);
    assert.equal(refused.status, 502);
    const none = await request(`${lb.url}/x`, { headers: { accept: 'application/json' } });
    assert.equal(none.status, 503);
    assert.equal(none.headers['retry-after'], '1');
    assert.match(none.headers['content-type'] ?? '', /application\/json/);
    assert.match(JSON.parse(none.body).message, /pool "refused"/);
    const started = Date.now();
    const timedOut = await request(`${lb.url}/slow`);
    assert.equal(timedOut.status, 504);
    assert.ok(Date.now() - started < 1500, 'answered at the response timeout, not when the backend finished');
  } finally {
    await cleanup(lb, [slow]);
  }
});

test('with no routes and one pool every request goes to it; the request counter and active count track it', async () => {
  const backend = await startBackend('only');
  let lb: RunningSwitchyard | undefined;
  try {
    lb = await startSwitchyard({ toml: `[server]\nlisten = "127.0.0.1:0"\n[pools.one]\nbackends = [{ url = "${backend.url}" }]\n` });
    for (const path of ['/', '/any/thing', '/x?y']) assert.equal((await request(`${lb.url}${path}`)).body, 'only');
    const tracked = lb.lb.registry.get(backend.url)!;
    assert.equal(tracked.requests, 3);
    assert.equal(tracked.active, 0);
    assert.equal(tracked.responses[1], 3, 'three 2xx');
  } finally {
    await cleanup(lb, [backend]);
  }
});
