/**
 * HTTP/1.x behaviour a client relies on: Expect: 100-continue, HTTP/1.0
 * clients (never chunked), pipelined requests answered in order and served
 * one at a time, bytes after a request that closes the connection, and
 * HEAD/204/304 without a body.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { once } from 'node:events';
import { MAX_WAITING } from '../../src/server/connection-turn.js';
import { startSwitchyard, startBackend, type RunningSwitchyard, type TestBackend } from '../../src/testing.js';
import { parseResponses, sendRaw } from '../helpers/raw-http.js';
import { waitFor } from '../helpers/waiting.js';

describe('HTTP/1.x protocol behaviour', () => {
  let backend: TestBackend;
  let lb: RunningSwitchyard;
  const seenHeaders: Record<string, string | string[] | undefined>[] = [];

  /** A Switchyard with one route (/x): anything else gets 404 from the proxy itself. */
  function startRoutedToX(): Promise<RunningSwitchyard> {
    return startSwitchyard({
      toml: `
        [server]
        listen = "127.0.0.1:0"
        [pools.web]
        backends = [{ url = "${backend.url}" }]
        [[routes]]
        match = { path_prefix = "/x" }
        pool = "web"
      `,
    });
  }

  before(async () => {
    backend = await startBackend('protocol', (req, res) => {
      seenHeaders.push(req.headers);
      const path = req.url!;
      if (path === '/echo') {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => res.end(`echo:${Buffer.concat(chunks).toString()}`));
        return;
      }
      if (path === '/stream') {
        // No Content-Length: chunked to HTTP/1.1, close-delimited to HTTP/1.0.
        res.write('part1-');
        setTimeout(() => res.end('part2'), 20);
        return;
      }
      if (path.startsWith('/delay/')) {
        setTimeout(() => res.end(`done ${path}`), Number(path.slice(7)));
        return;
      }
      if (path === '/no-content') {
        res.writeHead(204);
        res.end();
        return;
      }
      if (path === '/not-modified') {
        res.writeHead(304, { etag: '"v1"' });
        res.end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '11' });
      res.end(req.method === 'HEAD' ? undefined : 'hello world');
    });
    lb = await startSwitchyard({
      toml: `
        [server]
        listen = "127.0.0.1:0"
        [pools.web]
        backends = [{ url = "${backend.url}" }]
      `,
    });
  });
  after(async () => {
    await lb?.close();
    await backend?.close();
  });

  it('Expect: 100-continue: the client gets 100, sends its body, and the backend gets it without Expect', async () => {
    const socket = net.connect(lb.port, '127.0.0.1');
    try {
      let text = '';
      socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
      socket.write('POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n');
      await waitFor(() => text.includes('\r\n\r\n'));
      assert.match(text, /^HTTP\/1\.1 100 Continue\r\n/);
      socket.write('hello');
      await waitFor(() => parseResponses(text).some((r) => r.status === 200));
      const final = parseResponses(text).find((r) => r.status === 200)!;
      assert.equal(final.body, 'echo:hello');
      assert.equal(seenHeaders.at(-1)!.expect, undefined);
    } finally {
      socket.destroy();
    }
  });

  it('Expect: 100-continue on a request refused before its body (no route): the answer without 100, then the connection closes', async () => {
    const routed = await startRoutedToX();
    try {
      // Had the connection been kept, the client's next request would be read as the body it never sent.
      const result = await sendRaw(
        routed.port,
        'POST /nope HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n',
      );
      assert.deepEqual(result.responses.map((r) => r.status), [404], result.text);
      assert.match(result.responses[0]!.headers.connection ?? '', /close/);
      assert.ok(result.closed);
    } finally {
      await routed.close();
    }
  });

  it('an HTTP/1.0 client never gets chunked: the body ends with the connection', async () => {
    const result = await sendRaw(lb.port, 'GET /stream HTTP/1.0\r\nHost: a\r\n\r\n');
    assert.ok(result.closed);
    const response = result.responses[0]!;
    assert.equal(response.status, 200);
    assert.equal(response.headers['transfer-encoding'], undefined, result.text);
    assert.equal(response.body, 'part1-part2');
  });

  it('an HTTP/1.1 client gets the same stream chunked, on a kept connection', async () => {
    const result = await sendRaw(lb.port, 'GET /stream HTTP/1.1\r\nHost: a\r\n\r\n', { responses: 1 });
    assert.match(result.responses[0]!.headers['transfer-encoding'] ?? '', /chunked/);
    assert.equal(result.responses[0]!.body, 'part1-part2');
    assert.equal(result.closed, false);
  });

  it('pipelined requests are answered in order, whatever order the backend finishes them in', async () => {
    const result = await sendRaw(
      lb.port,
      'GET /delay/150 HTTP/1.1\r\nHost: a\r\n\r\nGET /delay/0 HTTP/1.1\r\nHost: a\r\n\r\nHEAD /head HTTP/1.1\r\nHost: a\r\n\r\nGET /delay/50 HTTP/1.1\r\nHost: a\r\n\r\n',
      { responses: 4 },
    );
    assert.deepEqual(
      result.responses.map((r) => r.body),
      ['done /delay/150', 'done /delay/0', '', 'done /delay/50'],
      result.text,
    );
  });

  it('an error answer (404, 413 by Content-Length aside) keeps the connection when no body is pending', async () => {
    const routed = await startRoutedToX();
    try {
      const result = await sendRaw(
        routed.port,
        'GET /nope HTTP/1.1\r\nHost: a\r\n\r\nPOST /nope HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /x HTTP/1.1\r\nHost: a\r\n\r\n',
        { responses: 3 },
      );
      assert.deepEqual(result.responses.map((r) => r.status), [404, 404, 200], result.text);
      assert.equal(result.responses[0]!.headers.connection, 'keep-alive');
      assert.equal(result.responses[2]!.body, 'hello world');
    } finally {
      await routed.close();
    }
  });

  it('HEAD, 204 and 304 carry no body; HEAD keeps Content-Length', async () => {
    const result = await sendRaw(
      lb.port,
      'HEAD /x HTTP/1.1\r\nHost: a\r\n\r\nGET /no-content HTTP/1.1\r\nHost: a\r\n\r\nGET /not-modified HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n',
      { responses: 4 },
    );
    assert.deepEqual(result.responses.map((r) => r.status), [200, 204, 304, 200]);
    assert.equal(result.responses[0]!.headers['content-length'], '11');
    assert.equal(result.responses[2]!.headers.etag, '"v1"');
    assert.equal(result.responses[3]!.body, 'hello world', 'the connection carried no stray body bytes');
    assert.equal(result.text.split('hello world').length, 2, 'exactly one body on the wire');
  });
});

describe('pipelined requests: one at a time per connection', () => {
  let backend: TestBackend;
  let lb: RunningSwitchyard;
  let value = 'v1';
  /** Requests of the pipelining client (`X-Client: pipeliner`) at the backend at once, and the most ever. */
  let inFlight = 0;
  let maxInFlight = 0;
  const arrived: string[] = [];
  /** Requests to /hold/… wait for the test: release functions by path, and who waits for one to arrive or be cancelled. */
  const held = new Map<string, () => void>();
  const onHold = new Map<string, () => void>();
  const onAbort = new Map<string, () => void>();

  before(async () => {
    backend = await startBackend('pipelining', (req, res) => {
      const counted = req.headers['x-client'] === 'pipeliner';
      if (counted) {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        arrived.push(`${req.method} ${req.url}`);
      }
      const answer = (body: string) => {
        if (counted) inFlight--;
        res.end(body);
      };
      res.on('close', () => {
        if (!res.writableFinished) onAbort.get(req.url!)?.();
      });
      let body = '';
      req.setEncoding('latin1');
      req.on('data', (c: string) => (body += c));
      req.on('end', () => {
        if (req.url === '/kv' && req.method === 'PUT') setTimeout(() => ((value = body), answer(`stored ${body}`)), 100);
        else if (req.url === '/kv') answer(`value=${value}`);
        else if (req.url!.startsWith('/hold/')) {
          held.set(req.url!, () => (held.delete(req.url!), answer('held')));
          onHold.get(req.url!)?.();
        } else answer(`ok ${req.url}`);
      });
    });
    lb = await startSwitchyard({
      toml: `
        [server]
        listen = "127.0.0.1:0"
        [pools.web]
        backends = [{ url = "${backend.url}" }]
      `,
    });
  });
  after(async () => {
    for (const release of held.values()) release();
    await lb?.close();
    await backend?.close();
  });
  const reset = () => {
    maxInFlight = 0;
    arrived.length = 0;
  };
  const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: a\r\nX-Client: pipeliner\r\n\r\n`;
  const arrives = (path: string) => new Promise<void>((resolve) => onHold.set(path, resolve));
  const cancelled = (path: string) => new Promise<void>((resolve) => onAbort.set(path, resolve));

  it('a PUT and the GET pipelined behind it reach the backend one after the other, in order', async () => {
    reset();
    value = 'v1';
    const put = 'PUT /kv HTTP/1.1\r\nHost: a\r\nX-Client: pipeliner\r\nContent-Length: 2\r\n\r\nv2';
    const result = await sendRaw(lb.port, put + get('/kv') + put.replace(/v2$/, 'v3') + get('/kv'), { responses: 4 });
    assert.deepEqual(result.responses.map((r) => r.body), ['stored v2', 'value=v2', 'stored v3', 'value=v3'], result.text);
    assert.deepEqual(arrived, ['PUT /kv', 'GET /kv', 'PUT /kv', 'GET /kv']);
    assert.equal(maxInFlight, 1, 'never two requests of one connection at the backend');
    assert.equal(result.responses[3]!.headers.connection, 'keep-alive');
    assert.equal(result.closed, false, 'the connection is kept');
  });

  it(`never more than one in flight; past ${MAX_WAITING} waiting requests the connection is not read until they are served`, async () => {
    reset();
    // Every request Node's parser emits on the test's connection, seen by the proxy's server.
    const client = net.connect(lb.port, '127.0.0.1');
    client.on('error', () => {});
    await once(client, 'connect');
    let parsed = 0;
    const onRequestStart = (message: unknown) => {
      const { socket } = message as { socket: net.Socket };
      if (socket.localPort === lb.port && socket.remotePort === client.localPort) parsed++;
    };
    subscribe('http.server.request.start', onRequestStart);
    try {
      const first = Array.from({ length: 2 * MAX_WAITING }, (_, i) => `/first/${i}`);
      const second = Array.from({ length: 2 * MAX_WAITING }, (_, i) => `/second/${i}`);
      const total = 1 + first.length + second.length;
      let text = '';
      let allAnswered: () => void;
      const answered = new Promise<void>((resolve) => (allAnswered = resolve));
      client.on('data', (d: Buffer) => {
        text += d.toString('latin1');
        if (parseResponses(text).length === total) allAnswered();
      });
      const holding = arrives('/hold/reading');
      client.write(get('/hold/reading') + first.map(get).join(''));
      await holding;
      assert.equal(parsed, 1 + first.length, 'one write, all parsed at once');
      client.write(second.map(get).join(''));
      // A whole exchange on another connection: the proxy's loop has seen the second write by then, had it read it.
      const other = await sendRaw(lb.port, 'GET /other HTTP/1.1\r\nHost: a\r\n\r\n', { responses: 1 });
      assert.equal(other.responses[0]?.status, 200);
      assert.equal(parsed, 1 + first.length, 'the second write was not read while the first waited');
      assert.deepEqual(arrived, ['GET /hold/reading'], 'nothing behind the held request reached the backend');

      held.get('/hold/reading')!();
      await answered;
      assert.deepEqual(parseResponses(text).map((r) => r.body), ['held', ...[...first, ...second].map((path) => `ok ${path}`)]);
      assert.equal(parsed, total);
      assert.equal(maxInFlight, 1);
    } finally {
      unsubscribe('http.server.request.start', onRequestStart);
      client.destroy();
    }
  });

  it('a client that goes away with requests waiting: they are never served, nothing stays in flight', async () => {
    reset();
    const client = net.connect(lb.port, '127.0.0.1');
    client.on('error', () => {});
    const holding = arrives('/hold/gone');
    client.write(get('/hold/gone') + get('/after/1') + get('/after/2'));
    await holding;
    const upstreamCancelled = cancelled('/hold/gone');
    client.destroy();
    await upstreamCancelled;
    assert.deepEqual(arrived, ['GET /hold/gone'], 'the waiting requests never reached the backend');
    assert.equal(lb.lb.generation.inflight, 0);
    const next = await sendRaw(lb.port, get('/next'), { responses: 1 });
    assert.equal(next.responses[0]?.body, 'ok /next');
    assert.deepEqual(arrived, ['GET /hold/gone', 'GET /next']);
  });

  it('a CONNECT pipelined behind a request waits for its answer, then gets 405 and the connection closes', async () => {
    const result = await sendRaw(lb.port, `${get('/before-connect')}CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n`);
    assert.deepEqual(result.responses.map((r) => r.status), [200, 405], result.text);
    assert.equal(result.responses[0]!.body, 'ok /before-connect');
    assert.ok(result.closed);
  });

  it('bytes after a request that closes the connection: its response is sent, the bytes are ignored, then the connection closes', async () => {
    const CASES = [
      { desc: 'Connection: close, then a stray CRLF', request: 'POST /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello\r\n' },
      { desc: 'HTTP/1.0, then a stray CRLF', request: 'POST /b HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello\r\n' },
      { desc: 'Connection: close, then another request', request: `GET /c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n${get('/never')}` },
    ];
    for (const { desc, request } of CASES) {
      const result = await sendRaw(lb.port, request);
      assert.deepEqual(result.responses.map((r) => r.status), [200], `${desc}: ${result.text}`);
      assert.match(result.responses[0]!.body, /^ok \/[abc]$/, desc);
      assert.ok(result.closed, `${desc}: closed`);
      assert.ok(!arrived.includes('GET /never'), `${desc}: what followed was not served`);
    }
  });
});
