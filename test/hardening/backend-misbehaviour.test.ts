/**
 * Backends that break the protocol, over raw sockets: each case is answered
 * 502 (or, once a response head is out, by cutting the client connection so
 * the client sees an incomplete response), it is logged, and the proxy keeps
 * serving — on that backend too.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type net from 'node:net';
import { startSwitchyard, type RunningSwitchyard } from '../../src/testing.js';
import { readRequestHead, sendRaw, startCapturingBackend, startRawBackend, type CapturingBackend } from '../helpers/raw-http.js';
import { waitFor } from '../helpers/waiting.js';

type Behaviour = (socket: net.Socket, head: string) => void;

const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';

/** What each misbehaving backend does with a request, by path. A request for /*-then-ok is answered properly. */
const BEHAVIOURS: Record<string, Behaviour> = {
  garbage: (s) => s.write('this is not http\r\n\r\n'),
  'bad-status': (s) => s.write('HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok'),
  'cl-te': (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n'),
  'invalid-header': (s) => s.write('HTTP/1.1 200 OK\r\nX Bad: y\r\nContent-Length: 2\r\n\r\nok'),
  'header-nul': (s) => s.write('HTTP/1.1 200 OK\r\nX-Bad: a\x00b\r\nContent-Length: 2\r\n\r\nok'),
  'huge-headers': (s) => s.write(`HTTP/1.1 200 OK\r\nX-Big: ${'x'.repeat(64 * 1024)}\r\nContent-Length: 2\r\n\r\nok`),
  'close-before-answer': (s) => s.end(),
  'reset-before-answer': (s) => s.resetAndDestroy(),
  'short-body': (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this'),
  'reset-mid-body': (s) => {
    // One write: with Nagle, a second small write could still sit in our send buffer when the reset drops it.
    s.write(`HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(5000)}`, () => setTimeout(() => s.resetAndDestroy(), 20));
  },
  // The bad chunk comes once the head is out (nothing written yet: an honest 502 is still possible, as 'bad-chunk-at-once' shows).
  'bad-chunk': (s) => {
    s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n', () => setTimeout(() => s.write('zz\r\n'), 20));
  },
  'bad-chunk-at-once': (s) => s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n'),
  'unsolicited-bytes': (s) => s.write(`${OK}HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled`),
  'no-content-with-body': (s) => s.write('HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello'),
  'not-modified-with-body': (s) => s.write('HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nhello'),
  'not-modified-with-length': (s) => s.write('HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\nETag: "v1"\r\n\r\n'),
  'head-with-body': (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello'),
  'early-hints': (s) => s.write(`HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n${OK}`),
  // A 100 nobody asked for: RFC 9110 §15.2 has a client read past any 1xx (undici 7 alone would refuse it).
  'unsolicited-continue': (s) => s.write(`HTTP/1.1 100 Continue\r\n\r\n${OK}`),
  'unrequested-upgrade': (s) => s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'),
  'close-delimited': (s) => s.end('HTTP/1.1 200 OK\r\n\r\nuntil close'),
};

describe('backend misbehaviour', () => {
  let raw: Awaited<ReturnType<typeof startRawBackend>>;
  let healthy: CapturingBackend;
  let lb: RunningSwitchyard;

  before(async () => {
    raw = await startRawBackend(async (socket) => {
      while (!socket.destroyed) {
        const head = await readRequestHead(socket);
        const path = head.split(' ')[1]!.slice(1);
        socket.resume();
        if (path.endsWith('-then-ok') || path === 'fine') socket.write(OK);
        else BEHAVIOURS[path]!(socket, head);
      }
    });
    healthy = await startCapturingBackend();
    lb = await startSwitchyard({
      captureLogs: true,
      toml: `
        [server]
        listen = "127.0.0.1:0"
        [pools.raw]
        passive_failures = 0
        response_timeout = "2s"
        backends = [{ url = "${raw.url}" }]
        [pools.healthy]
        backends = [{ url = "${healthy.url}" }]
        [[routes]]
        match = { path_prefix = "/healthy" }
        pool = "healthy"
        [[routes]]
        pool = "raw"
      `,
    });
  });
  after(async () => {
    await lb?.close();
    await raw?.close();
    await healthy?.close();
  });

  async function stillServing(): Promise<void> {
    const [viaHealthy, viaRaw] = await Promise.all([
      sendRaw(lb.port, 'GET /healthy HTTP/1.1\r\nHost: a\r\n\r\n', { responses: 1 }),
      sendRaw(lb.port, 'GET /fine HTTP/1.1\r\nHost: a\r\n\r\n', { responses: 1 }),
    ]);
    assert.equal(viaHealthy.responses[0]?.status, 200, viaHealthy.text);
    assert.equal(viaRaw.responses[0]?.status, 200, `the misbehaving backend's pool still serves: ${viaRaw.text}`);
    assert.equal(viaRaw.responses[0]?.body, 'ok');
  }

  const INVALID = 'LB_ERR_UPSTREAM_PROTOCOL';
  const RESET = 'LB_ERR_UPSTREAM_RESET';
  const BAD_GATEWAY: Record<string, typeof INVALID | typeof RESET> = {
    garbage: INVALID,
    'bad-status': INVALID,
    'cl-te': INVALID,
    'invalid-header': INVALID,
    'header-nul': INVALID,
    'huge-headers': INVALID,
    'bad-chunk-at-once': INVALID,
    'unrequested-upgrade': INVALID,
    'close-before-answer': RESET,
    'reset-before-answer': RESET,
  };
  for (const [path, code] of Object.entries(BAD_GATEWAY)) {
    it(`${path}: 502 (${code}), logged, and the proxy keeps serving`, async () => {
      const logged = lb.logs.length;
      const result = await sendRaw(lb.port, `GET /${path} HTTP/1.1\r\nHost: a\r\n\r\n`, { responses: 1 });
      assert.equal(result.responses[0]?.status, 502, result.text);
      const message = code === INVALID ? 'The backend sent an invalid response.' : 'The backend closed the connection before answering.';
      assert.equal(result.responses[0]!.body, `502 ${message}\n`, 'no stack trace, and the message says what happened');
      const warnings = lb.logs.slice(logged).filter((l) => l.level === 40);
      assert.deepEqual(
        warnings.map((l) => l.code),
        [code],
        'one warning, with the code of what happened',
      );
      await stillServing();
    });
  }

  const CUT = ['short-body', 'reset-mid-body', 'bad-chunk'];
  for (const path of CUT) {
    it(`${path}: the head is out, so the client connection is cut (no clean short response), logged`, async () => {
      const logged = lb.logs.length;
      const result = await sendRaw(lb.port, `GET /${path} HTTP/1.1\r\nHost: a\r\n\r\n`, { timeoutMs: 3000 });
      assert.match(result.text, /^HTTP\/1\.1 200/);
      assert.ok(result.closed, 'connection cut');
      assert.equal(result.responses.length, 0, `the client can tell the response is incomplete: ${result.text.slice(0, 200)}`);
      await waitFor(() => lb.logs.slice(logged).some((l) => l.level === 40 && /broke off/.test(l.msg)));
      await stillServing();
    });
  }

  it('unsolicited bytes after a response never reach a client as a response', async () => {
    const first = await sendRaw(lb.port, 'GET /unsolicited-bytes HTTP/1.1\r\nHost: a\r\n\r\n', { responses: 1 });
    assert.equal(first.responses[0]?.status, 200);
    assert.equal(first.responses[0]?.body, 'ok');
    for (let i = 0; i < 3; i++) {
      const next = await sendRaw(lb.port, 'GET /fine HTTP/1.1\r\nHost: a\r\n\r\n', { responses: 1 });
      assert.equal(next.responses[0]?.status, 200);
      assert.equal(next.responses[0]?.body, 'ok', 'the smuggled response was not handed to a later request');
    }
  });

  it('a 204 and a 304 carry no body to the client, even when the backend sends one', async () => {
    for (const [path, status] of [['no-content-with-body', 204], ['not-modified-with-body', 304]] as const) {
      const result = await sendRaw(lb.port, `GET /${path} HTTP/1.1\r\nHost: a\r\n\r\nGET /fine HTTP/1.1\r\nHost: a\r\n\r\n`, { responses: 2 });
      assert.equal(result.responses[0]?.status, status, result.text);
      if (status === 204) assert.equal(result.responses[0]?.headers['content-length'], undefined, 'no Content-Length on a 204');
      assert.equal(result.responses[1]?.status, 200, `the next response on the connection is intact: ${JSON.stringify(result.text)}`);
      assert.equal(result.responses[1]?.body, 'ok');
      assert.doesNotMatch(result.text, /hello/);
    }
  });

  it('a valid 304 with Content-Length passes whole (undici 7 alone would fail it as a length mismatch)', async () => {
    const result = await sendRaw(lb.port, 'GET /not-modified-with-length HTTP/1.1\r\nHost: a\r\n\r\nGET /fine HTTP/1.1\r\nHost: a\r\n\r\n', { responses: 2 });
    assert.equal(result.responses[0]?.status, 304, result.text);
    assert.equal(result.responses[0]?.headers['content-length'], '1234');
    assert.equal(result.responses[0]?.headers.etag, '"v1"');
    assert.equal(result.responses[1]?.status, 200);
    assert.equal(result.responses[1]?.body, 'ok');
  });

  it('HEAD carries no body, even when the backend sends one', async () => {
    const result = await sendRaw(lb.port, 'HEAD /head-with-body HTTP/1.1\r\nHost: a\r\n\r\nGET /fine HTTP/1.1\r\nHost: a\r\n\r\n', { responses: 2 });
    assert.equal(result.responses[0]?.status, 200, result.text);
    assert.equal(result.responses[0]?.headers['content-length'], '5', 'HEAD keeps the length of the body it does not carry');
    assert.equal(result.responses[1]?.status, 200);
    assert.equal(result.responses[1]?.body, 'ok');
    assert.doesNotMatch(result.text, /hello/);
  });

  it('1xx interim responses are not relayed, an unsolicited 100 Continue included; the final one is', async () => {
    for (const path of ['early-hints', 'unsolicited-continue']) {
      const result = await sendRaw(lb.port, `GET /${path} HTTP/1.1\r\nHost: a\r\n\r\n`, { responses: 1 });
      assert.deepEqual(result.responses.map((r) => r.status), [200], path);
      assert.equal(result.responses[0]!.body, 'ok');
    }
  });

  it('a close-delimited response body is re-framed for the client', async () => {
    const result = await sendRaw(lb.port, 'GET /close-delimited HTTP/1.1\r\nHost: a\r\n\r\n', { responses: 1 });
    assert.equal(result.responses[0]?.status, 200);
    assert.equal(result.responses[0]?.body, 'until close');
    assert.match(result.responses[0]!.headers['transfer-encoding'] ?? '', /chunked/);
  });
});

/**
 * A plugin may still be working after `await next()` (logging somewhere,
 * a lookup) when the backend breaks off. Nothing has been written to the
 * client yet, so the honest answer is a 502, not a 200 head followed by a
 * cut connection. The plugin here makes that timing certain: it holds the
 * response until the backend has reset and the proxy has seen it.
 */
describe('backend breaks off while a plugin still holds the response head', () => {
  const HOLDING_PLUGIN = `
    export default {
      name: 'hold-head',
      kind: 'middleware',
      create() {
        return {
          async handle(ctx, next) {
            await next();
            const exchange = ctx.response?.exchange;
            if (exchange === undefined) return;
            globalThis.__lbHeadIn();
            const deadline = Date.now() + 3000;
            while (exchange.failure === undefined && Date.now() < deadline) await new Promise((r) => setImmediate(r));
          },
        };
      },
    };
  `;
  let raw: Awaited<ReturnType<typeof startRawBackend>>;
  let lb: RunningSwitchyard;
  let headIn: Promise<void>;
  const global = globalThis as Record<string, unknown>;

  before(async () => {
    headIn = new Promise<void>((resolve) => (global.__lbHeadIn = resolve));
    raw = await startRawBackend(async (socket) => {
      await readRequestHead(socket);
      socket.resume();
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n${'x'.repeat(10)}`);
      await headIn;
      socket.resetAndDestroy();
    });
    lb = await startSwitchyard({
      captureLogs: true,
      files: { 'hold-head.mjs': HOLDING_PLUGIN },
      toml: `
        [server]
        listen = "127.0.0.1:0"
        [pools.raw]
        passive_failures = 0
        backends = [{ url = "${raw.url}" }]
        [[pipeline]]
        plugin = "./hold-head.mjs"
      `,
    });
  });
  after(async () => {
    await lb?.close();
    await raw?.close();
    delete global.__lbHeadIn;
  });

  it('the client gets a 502, and it is logged', async () => {
    const logged = lb.logs.length;
    const result = await sendRaw(lb.port, 'GET /breaks HTTP/1.1\r\nHost: a\r\n\r\n', { responses: 1, timeoutMs: 3000 });
    assert.equal(result.responses[0]?.status, 502, result.text);
    assert.match(result.responses[0]!.body, /^502 /);
    assert.doesNotMatch(result.text, /xxxxxxxxxx/, 'none of the broken body reached the client');
    assert.ok(lb.logs.slice(logged).some((l) => l.level === 40 && l.code !== undefined), 'a warning was logged');
  });
});
