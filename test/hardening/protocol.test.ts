/**
 * HTTP/1.x behaviour a client relies on: Expect: 100-continue, HTTP/1.0
 * clients (never chunked), pipelined requests answered in order, and
 * HEAD/204/304 without a body.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startSwitchyard, startBackend, type RunningSwitchyard, type TestBackend } from '../../src/testing.js';
import { parseResponses, sendRaw } from '../helpers/raw-http.js';

describe('HTTP/1.x protocol behaviour', () => {
  let backend: TestBackend;
  let lb: RunningSwitchyard;
  const seenHeaders: Record<string, string | string[] | undefined>[] = [];

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
    const routed = await startSwitchyard({
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

async function waitFor(condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
