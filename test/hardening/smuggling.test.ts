/**
 * Request smuggling and framing, over raw sockets: every request that could
 * be read two ways is answered 400, the connection is closed, and nothing of
 * it — nor anything pipelined behind it — reaches the backend.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startSwitchyard, type RunningSwitchyard } from '../../src/testing.js';
import { sendRaw, startCapturingBackend, type CapturingBackend } from '../helpers/raw-http.js';

/** Appended to every case: a second request that must never be served. */
const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n';

const CASES: { desc: string; request: string }[] = [
  // Caught by llhttp (clientError): asserted anyway, so an upgrade of Node that loosens one is noticed.
  { desc: 'Content-Length with Transfer-Encoding (CL.TE)', request: 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG' },
  { desc: 'Transfer-Encoding with Content-Length (TE.CL)', request: 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n' },
  { desc: 'two equal Content-Length', request: 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd' },
  { desc: 'two different Content-Length', request: 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd' },
  { desc: 'Content-Length list', request: 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 4\r\n\r\nabcd' },
  { desc: 'Content-Length with sign', request: 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\nabcd' },
  { desc: 'Content-Length in hex', request: 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x4\r\n\r\nabcd' },
  { desc: 'negative Content-Length', request: 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\nabcd' },
  { desc: 'empty Content-Length', request: 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n' },
  { desc: 'overflowing Content-Length', request: 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n' },
  { desc: 'coding after chunked', request: 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n' },
  { desc: 'Transfer-Encoding: identity', request: 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\nabcd' },
  { desc: 'Transfer-Encoding: xchunked', request: 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n' },
  { desc: 'Transfer-Encoding with vertical tab', request: 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n' },
  { desc: 'space before colon', request: 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n' },
  { desc: 'tab before colon', request: 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 4\r\n\r\nabcd' },
  { desc: 'obs-fold', request: 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n' },
  { desc: 'obs-fold continuing Transfer-Encoding', request: 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip,\r\n chunked\r\n\r\n0\r\n\r\n' },
  { desc: 'header line starting with a space', request: 'POST / HTTP/1.1\r\nHost: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\nabcd' },
  { desc: 'bare LF line endings', request: 'GET / HTTP/1.1\nHost: a\n\n' },
  { desc: 'bare LF after one header', request: 'GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n' },
  { desc: 'bare CR inside a value', request: 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n' },
  { desc: 'bare CR after the request line', request: 'GET / HTTP/1.1\rHost: a\r\n\r\n' },
  { desc: 'NUL in a value', request: 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n' },
  { desc: 'NUL in a name', request: 'GET / HTTP/1.1\r\nHost: a\r\nX\x00A: bc\r\n\r\n' },
  { desc: 'control character in a value', request: 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01c\r\n\r\n' },
  { desc: 'empty header name', request: 'GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n' },
  { desc: 'bad chunk size', request: 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4 \r\nabcd\r\n0\r\n\r\n' },
  { desc: 'chunk size overflow', request: 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF1\r\nabcd\r\n0\r\n\r\n' },
  { desc: 'bare LF in chunked framing', request: 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\nabcd\n0\n\n' },
  // Accepted by llhttp, refused by the guard.
  { desc: 'Transfer-Encoding: gzip, chunked', request: 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n' },
  { desc: 'two Transfer-Encoding fields', request: 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' },
  { desc: 'Transfer-Encoding: ,chunked', request: 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n' },
  { desc: 'Transfer-Encoding on HTTP/1.0', request: 'POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' },
  { desc: 'Transfer_Encoding with underscore', request: 'POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\nContent-Length: 4\r\n\r\nabcd' },
  { desc: 'Content_Length with underscore', request: 'POST / HTTP/1.1\r\nHost: a\r\nContent_Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' },
  { desc: 'duplicate Host', request: 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n' },
];

describe('request smuggling and framing', () => {
  let backend: CapturingBackend;
  let lb: RunningSwitchyard;

  before(async () => {
    backend = await startCapturingBackend();
    lb = await startSwitchyard({
      toml: `
        [server]
        listen = "127.0.0.1:0"
        [pools.web]
        passive_failures = 0
        backends = [{ url = "${backend.url}" }]
      `,
    });
  });
  after(async () => {
    await lb?.close();
    await backend?.close();
  });

  for (const { desc, request } of CASES) {
    it(`${desc}: 400, connection closed, nothing forwarded`, async () => {
      const before = backend.seen.length;
      const result = await sendRaw(lb.port, request + SMUGGLED);
      assert.equal(result.responses.length, 1, `exactly one answer, got: ${JSON.stringify(result.text)}`);
      assert.equal(result.responses[0]!.status, 400, result.text);
      assert.match(result.responses[0]!.headers['content-type'] ?? '', /text\/plain/);
      assert.ok(result.closed, 'the connection is closed');
      assert.equal(backend.seen.length, before, `the backend saw: ${JSON.stringify(backend.seen.slice(before))}`);
    });
  }

  it('a clean chunked request still goes through, re-framed for the backend', async () => {
    const result = await sendRaw(
      lb.port,
      'POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ChUnKeD\r\n\r\n4;ext=1\r\nabcd\r\n2\r\nef\r\n0\r\nX-Trailer: 1\r\n\r\n',
      { responses: 1 },
    );
    assert.equal(result.responses[0]?.status, 200, result.text);
    const seen = backend.seen.at(-1)!;
    assert.equal(seen.url, '/echo');
    assert.equal(seen.body, 'abcdef');
    assert.equal(seen.headers['content-length'], undefined);
  });

  it('a refused request in the middle of a pipeline: the one before is answered, none after it is served', async () => {
    const before = backend.seen.length;
    const result = await sendRaw(
      lb.port,
      `GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n${SMUGGLED}`,
    );
    assert.deepEqual(result.responses.map((r) => r.status), [200, 400], result.text);
    assert.ok(result.closed);
    assert.deepEqual(backend.seen.slice(before).map((s) => s.url), ['/first']);
  });

  it('a request llhttp refuses behind one in flight: that one (already forwarded) is answered, then 400, nothing after it served', async () => {
    const before = backend.seen.length;
    const result = await sendRaw(
      lb.port,
      `GET /first HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab${SMUGGLED}`,
    );
    assert.deepEqual(result.responses.map((r) => r.status), [200, 400], result.text);
    assert.ok(result.closed);
    assert.deepEqual(backend.seen.slice(before).map((s) => s.url), ['/first']);
  });

  it('requests pipelined behind a refused one are never served', async () => {
    const before = backend.seen.length;
    const result = await sendRaw(lb.port, [
      'GET /first HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n',
      SMUGGLED,
    ], { gapMs: 50 });
    assert.deepEqual(result.responses.map((r) => r.status), [400]);
    assert.ok(result.closed);
    assert.equal(backend.seen.length, before);
  });
});
