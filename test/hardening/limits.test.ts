/**
 * Limits: header section size and field count (431), long URIs, request
 * bodies (413 up front from Content-Length, mid-stream for chunked bodies),
 * bodies a backend never reads, and max_connections with a bounded queue.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import http from 'node:http';
import { WHOLE_BODY_LIMIT } from '../../src/server/whole-body.js';
import { startSwitchyard, startBackend, type RunningSwitchyard, type TestBackend } from '../../src/testing.js';
import { parseResponses, sendRaw, startCapturingBackend, type CapturingBackend, type RawResponse } from '../helpers/raw-http.js';
import { waitFor } from '../helpers/waiting.js';

/** Sends a head and then `bodyBytes` of body (as fast as the proxy takes it); resolves with the first response and whether the connection then closed. */
function uploadAndRead(port: number, head: string, body: Buffer): Promise<{ response: RawResponse | undefined; closed: boolean; ms: number }> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    let response: RawResponse | undefined;
    const timer = setTimeout(() => finish(false), 4000);
    const finish = (closed: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ response, closed, ms: performance.now() - started });
    };
    socket.on('error', () => {});
    socket.on('close', () => finish(true));
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (response === undefined) {
        response = parseResponses(text)[0];
        // Our side closes too: a lingering proxy then closes at once.
        if (response !== undefined) socket.end();
      }
    });
    socket.write(head);
    socket.write(body);
  });
}

describe('header limits', () => {
  let backend: CapturingBackend;
  let lb: RunningSwitchyard;

  before(async () => {
    backend = await startCapturingBackend();
    lb = await startSwitchyard({
      toml: `
        [server]
        listen = "127.0.0.1:0"
        max_header_size = "2KB"
        max_headers_count = 10
        [pools.web]
        backends = [{ url = "${backend.url}" }]
      `,
    });
  });
  after(async () => {
    await lb?.close();
    await backend?.close();
  });

  const fields = (n: number) => Array.from({ length: n }, (_, i) => `X-F${i}: ${i}\r\n`).join('');

  it('a header section over max_header_size: 431, closed, nothing forwarded', async () => {
    const before = backend.seen.length;
    const result = await sendRaw(lb.port, `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'x'.repeat(3000)}\r\n\r\n`);
    assert.deepEqual(result.responses.map((r) => r.status), [431], result.text);
    assert.ok(result.closed);
    assert.equal(backend.seen.length, before);
  });

  it('more fields than max_headers_count: 431, never a truncated header set', async () => {
    const before = backend.seen.length;
    const result = await sendRaw(lb.port, `GET / HTTP/1.1\r\nHost: a\r\n${fields(10)}\r\n`);
    assert.deepEqual(result.responses.map((r) => r.status), [431], result.text);
    assert.ok(result.closed);
    assert.equal(backend.seen.length, before);
  });

  it('exactly max_headers_count fields: forwarded whole', async () => {
    const result = await sendRaw(lb.port, `GET / HTTP/1.1\r\nHost: a\r\n${fields(9)}\r\n`, { responses: 1 });
    assert.equal(result.responses[0]?.status, 200, result.text);
    assert.equal(backend.seen.at(-1)!.headers['x-f8'], '8');
  });

  it('a URI longer than max_header_size: 431, closed', async () => {
    const before = backend.seen.length;
    const result = await sendRaw(lb.port, `GET /${'a'.repeat(4000)} HTTP/1.1\r\nHost: a\r\n\r\n`);
    assert.deepEqual(result.responses.map((r) => r.status), [431], result.text);
    assert.ok(result.closed);
    assert.equal(backend.seen.length, before);
  });
});

describe('request body limits', () => {
  let backend: CapturingBackend;
  let early: TestBackend;
  let lb: RunningSwitchyard;

  before(async () => {
    backend = await startCapturingBackend();
    // Answers before reading the body: 413 for /big, 403 for anything else.
    early = await startBackend('early', (req, res) => {
      res.writeHead(req.url === '/big' ? 413 : 403, { 'content-type': 'text/plain', 'content-length': '2' });
      res.end('no');
    });
    lb = await startSwitchyard({
      toml: `
        [server]
        listen = "127.0.0.1:0"
        max_body = "64KB"
        [pools.web]
        passive_failures = 0
        backends = [{ url = "${backend.url}" }]
        [pools.early]
        backends = [{ url = "${early.url}" }]
        [[routes]]
        match = { path_prefix = "/early" }
        pool = "early"
        [[routes]]
        pool = "web"
      `,
    });
  });
  after(async () => {
    await lb?.close();
    await backend?.close();
    await early?.close();
  });

  it('Content-Length over max_body: 413 before a byte of the body is read, nothing forwarded', async () => {
    const before = backend.seen.length;
    // The body is never sent: the answer must come from the head alone.
    const result = await sendRaw(lb.port, 'POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 70000\r\n\r\n', { responses: 1 });
    assert.equal(result.responses[0]?.status, 413, result.text);
    assert.match(result.responses[0]!.headers.connection ?? '', /close/);
    assert.equal(backend.seen.length, before);
  });

  it('Expect: 100-continue with a Content-Length over max_body: 413 straight away, never 100 Continue', async () => {
    const before = backend.seen.length;
    const result = await sendRaw(lb.port, 'PUT /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 70000\r\nExpect: 100-continue\r\n\r\n', {
      responses: 1,
    });
    assert.deepEqual(result.responses.map((r) => r.status), [413], result.text);
    assert.match(result.responses[0]!.headers.connection ?? '', /close/);
    assert.equal(backend.seen.length, before);
  });

  it('a chunked body over max_body: cut mid-stream, upstream aborted, client 413', async () => {
    const before = backend.seen.length;
    const chunk = `${(8192).toString(16)}\r\n${'x'.repeat(8192)}\r\n`;
    const result = await sendRaw(lb.port, ['POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n', ...Array(12).fill(chunk)], {
      gapMs: 5,
      timeoutMs: 3000,
    });
    assert.equal(result.responses[0]?.status, 413, result.text.slice(0, 300));
    assert.ok(result.closed, 'connection closed');
    await waitFor(() => backend.seen.length > before);
    const seen = backend.seen.at(-1)!;
    assert.equal(seen.complete, false, 'the backend saw the upload aborted, not completed');
    assert.ok(seen.body.length <= 64 * 1024, `the backend got ${seen.body.length} bytes`);
  });

  it('a chunked body over max_body after the response head is out: the client connection is cut', async () => {
    const streaming = await startBackend('streaming', (req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('started');
      req.on('data', () => {});
      req.on('end', () => res.end('done'));
    });
    const proxy = await startSwitchyard({
      toml: `
        [server]
        listen = "127.0.0.1:0"
        max_body = "16KB"
        [pools.web]
        passive_failures = 0
        backends = [{ url = "${streaming.url}" }]
      `,
    });
    try {
      const chunk = `${(4096).toString(16)}\r\n${'x'.repeat(4096)}\r\n`;
      const result = await sendRaw(proxy.port, ['POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n', ...Array(8).fill(chunk)], { gapMs: 20 });
      assert.match(result.text, /^HTTP\/1\.1 200/);
      assert.doesNotMatch(result.text, /done/);
      assert.ok(result.closed, 'connection cut');
      assert.equal(result.responses.length, 0, 'no complete response: the client can tell it was cut');
    } finally {
      await proxy.close();
      await streaming.close();
    }
  });

  it('a backend answering before reading a large body: client gets the answer, the connection closes, shutdown does not wait', async () => {
    const proxy = await startSwitchyard({
      toml: `
        [server]
        listen = "127.0.0.1:0"
        [pools.early]
        backends = [{ url = "${early.url}" }]
      `,
    });
    let closeMs = Infinity;
    try {
      const body = Buffer.alloc(5 * 1024 * 1024, 120);
      const { response, closed } = await uploadAndRead(
        proxy.port,
        `POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: ${body.length}\r\n\r\n`,
        body,
      );
      assert.equal(response?.status, 413);
      assert.equal(response?.body, 'no');
      assert.match(response?.headers.connection ?? '', /close/);
      assert.ok(closed, 'the proxy closed the connection once we did');
    } finally {
      const started = performance.now();
      await proxy.lb.close(5000);
      closeMs = performance.now() - started;
      await proxy.close();
    }
    assert.ok(closeMs < 1000, `shutdown took ${Math.round(closeMs)}ms: a connection was left busy`);
  });

  it('a backend answering before reading a streamed body within the drain limit: the rest is drained and the connection reused', async () => {
    // Default max_body: the body must stream (over WHOLE_BODY_LIMIT; a smaller one is read whole first) and stay under DRAIN_LIMIT.
    const proxy = await startSwitchyard({
      toml: `
        [server]
        listen = "127.0.0.1:0"
        [pools.early]
        backends = [{ url = "${early.url}" }]
      `,
    });
    const socket = net.connect(proxy.port, '127.0.0.1');
    try {
      await new Promise((resolve) => socket.once('connect', resolve));
      let text = '';
      socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
      const body = 'y'.repeat(WHOLE_BODY_LIMIT + 20_000);
      // undici sends the request head with the first body bytes: send some, hold the rest back.
      socket.write(`POST /early HTTP/1.1\r\nHost: a\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 1000)}`);
      await waitFor(() => parseResponses(text).length === 1);
      assert.equal(parseResponses(text)[0]!.status, 403);
      assert.doesNotMatch(parseResponses(text)[0]!.headers.connection ?? '', /close/);
      socket.write(body.slice(1000));
      socket.write('GET /after HTTP/1.1\r\nHost: a\r\n\r\n');
      await waitFor(() => parseResponses(text).length === 2);
      assert.equal(parseResponses(text)[1]!.status, 403, 'the next request on the same connection was served');
    } finally {
      socket.destroy();
      await proxy.close();
    }
  });
});

describe('max_connections and the wait queue', () => {
  let held: http.ServerResponse[] = [];
  let backend: TestBackend;
  let lb: RunningSwitchyard;

  before(async () => {
    backend = await startBackend('slow', (_req, res) => {
      held.push(res);
    });
    lb = await startSwitchyard({
      toml: `
        [server]
        listen = "127.0.0.1:0"
        [pools.web]
        max_connections = 1
        max_queue = 1
        backends = [{ url = "${backend.url}" }]
      `,
    });
  });
  after(async () => {
    for (const res of held) res.destroy();
    await lb?.close();
    await backend?.close();
  });

  it('past max_connections + max_queue: 503 at once; the others are served; active returns to 0', async () => {
    held = [];
    const first = fetch(`${lb.url}/1`);
    await waitFor(() => held.length === 1);
    const second = fetch(`${lb.url}/2`);
    const stats = lb.lb.registry.get(backend.url)!;
    await waitFor(() => stats.active === 2);
    const started = performance.now();
    const third = await fetch(`${lb.url}/3`);
    assert.equal(third.status, 503);
    assert.equal(third.headers.get('retry-after'), '1');
    assert.match(await third.text(), /connection limit/);
    assert.ok(performance.now() - started < 500, 'refused at once');
    assert.equal(held.length, 1, 'only one connection to the backend');
    held[0]!.end('one');
    await waitFor(() => held.length === 2);
    held[1]!.end('two');
    assert.equal(await (await first).text(), 'one');
    assert.equal(await (await second).text(), 'two');
    await waitFor(() => stats.active === 0);
  });
});
