/**
 * src/proxy/upstream-errors.ts: what each upstream failure means. The
 * undici errors come from real sockets (a raw backend on 127.0.0.1
 * answering each request in a broken way), because the mapping depends on
 * details of undici's errors — HTTPParserError's missing code, SocketError's
 * messages — that an undici upgrade may change: then these fail.
 */
import { after, before, describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import type net from 'node:net';
import { Socket } from 'node:net';
import { Pool } from 'undici';
import { LbError, type ErrorCode } from '../../src/errors.js';
import { isBackendFault, isLocalFault, upstreamError, upstreamErrorCode } from '../../src/proxy/upstream-errors.js';
import { watchBackendSocket } from '../../src/proxy/backend-socket.js';
import { ConnectTimeoutError } from '../../src/proxy/undici-parts.js';
import { readRequestHead, startRawBackend } from '../helpers/raw-http.js';

const UNDICI_ANSWERS: { desc: string; answer: (socket: net.Socket) => void; code: ErrorCode }[] = [
  { desc: 'a garbage status line', answer: (s) => s.write('HTTP/1.1 abc OK\r\n\r\n'), code: 'LB_ERR_UPSTREAM_PROTOCOL' },
  { desc: 'Content-Length: abc', answer: (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n'), code: 'LB_ERR_UPSTREAM_PROTOCOL' },
  { desc: 'a NUL in a header value', answer: (s) => s.write('HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 0\r\n\r\n'), code: 'LB_ERR_UPSTREAM_PROTOCOL' },
  { desc: 'not HTTP at all', answer: (s) => s.write('hello there\r\n\r\n'), code: 'LB_ERR_UPSTREAM_PROTOCOL' },
  {
    desc: 'an unsolicited 100 Continue before the answer (undici: SocketError "bad response")',
    answer: (s) => s.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'),
    code: 'LB_ERR_UPSTREAM_PROTOCOL',
  },
  {
    desc: 'a 101 to a request that asked for no upgrade (undici: SocketError "bad upgrade")',
    answer: (s) => s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'),
    code: 'LB_ERR_UPSTREAM_PROTOCOL',
  },
  { desc: 'the connection closed before an answer (SocketError "other side closed")', answer: (s) => s.end(), code: 'LB_ERR_UPSTREAM_RESET' },
  { desc: 'the connection reset before an answer', answer: (s) => s.resetAndDestroy(), code: 'LB_ERR_UPSTREAM_RESET' },
  { desc: 'the connection closed inside the head', answer: (s) => s.end('HTTP/1.1 200 OK\r\nContent-Le'), code: 'LB_ERR_UPSTREAM_RESET' },
];

describe('upstreamErrorCode on errors undici raises for a real backend', () => {
  let backend: Awaited<ReturnType<typeof startRawBackend>>;
  before(async () => {
    backend = await startRawBackend(async (socket) => {
      const head = await readRequestHead(socket);
      UNDICI_ANSWERS[Number(head.split(' ')[1]!.slice(1))]!.answer(socket);
    });
  });
  after(() => backend?.close());

  UNDICI_ANSWERS.forEach(({ desc, code }, index) => {
    it(`${desc} → ${code}`, async () => {
      const pool = new Pool(backend.url, { connect: { timeout: 2000 }, headersTimeout: 2000, bodyTimeout: 2000 });
      try {
        const err = await pool.request({ path: `/${index}`, method: 'GET' }).then(
          async (response) => {
            await response.body.text();
            return undefined;
          },
          (e: unknown) => e,
        );
        assert.ok(err instanceof Error, `undici accepted the response`);
        assert.equal(upstreamErrorCode(err), code, `${err.name} ${String((err as { code?: unknown }).code)} ${JSON.stringify(err.message)}`);
      } finally {
        await pool.destroy();
      }
    });
  });
});

function fake(code: string | undefined, message = '', name = 'Error'): Error {
  const err = new Error(message);
  err.name = name;
  if (code !== undefined) Object.assign(err, { code });
  return err;
}

const BY_SHAPE: { desc: string; err: unknown; code: ErrorCode }[] = [
  { desc: 'ECONNREFUSED', err: fake('ECONNREFUSED'), code: 'LB_ERR_UPSTREAM_CONNECT' },
  { desc: 'undici connect timeout', err: fake('UND_ERR_CONNECT_TIMEOUT'), code: 'LB_ERR_UPSTREAM_CONNECT_TIMEOUT' },
  { desc: 'headers timeout', err: fake('UND_ERR_HEADERS_TIMEOUT'), code: 'LB_ERR_UPSTREAM_TIMEOUT' },
  { desc: 'ECONNRESET', err: fake('ECONNRESET'), code: 'LB_ERR_UPSTREAM_RESET' },
  { desc: 'SocketError "closed"', err: fake('UND_ERR_SOCKET', 'closed'), code: 'LB_ERR_UPSTREAM_RESET' },
  { desc: 'SocketError "bad response" (also a response to no request)', err: fake('UND_ERR_SOCKET', 'bad response'), code: 'LB_ERR_UPSTREAM_PROTOCOL' },
  { desc: 'an llhttp code, should undici fill it in again', err: fake('HPE_INVALID_STATUS'), code: 'LB_ERR_UPSTREAM_PROTOCOL' },
  { desc: 'HTTPParserError without a code (undici 7)', err: fake(undefined, 'Invalid status code', 'HTTPParserError'), code: 'LB_ERR_UPSTREAM_PROTOCOL' },
  { desc: 'body length mismatch', err: fake('UND_ERR_RES_CONTENT_LENGTH_MISMATCH'), code: 'LB_ERR_UPSTREAM_PROTOCOL' },
  { desc: 'aborted by us', err: fake('UND_ERR_ABORTED'), code: 'LB_ERR_CLIENT_GONE' },
  { desc: 'an unknown code', err: fake('EWHATEVER'), code: 'LB_ERR_UPSTREAM_RESET' },
  { desc: 'an Error without a code', err: new Error('x'), code: 'LB_ERR_UPSTREAM_RESET' },
  { desc: 'not an object', err: undefined, code: 'LB_ERR_UPSTREAM_RESET' },
];
for (const { desc, err, code } of BY_SHAPE) {
  test(`upstreamErrorCode: ${desc} → ${code}`, () => {
    assert.equal(upstreamErrorCode(err), code);
  });
}

test('upstreamError keeps the cause and names the backend; an LbError passes as it is', () => {
  const cause = fake(undefined, 'Invalid status code', 'HTTPParserError');
  const mapped = upstreamError(cause, 'http://127.0.0.1:1');
  assert.equal(mapped.code, 'LB_ERR_UPSTREAM_PROTOCOL');
  assert.equal(mapped.message, 'The backend sent an invalid response.');
  assert.equal(mapped.cause, cause);
  assert.equal((cause as unknown as { backend: string }).backend, 'http://127.0.0.1:1');
  const own = new LbError('LB_ERR_UPSTREAM_BUSY');
  assert.equal(upstreamError(own, 'http://127.0.0.1:1'), own);
});

const FAULTS: { code: ErrorCode; fault: boolean }[] = [
  { code: 'LB_ERR_UPSTREAM_CONNECT', fault: true },
  { code: 'LB_ERR_UPSTREAM_CONNECT_TIMEOUT', fault: true },
  { code: 'LB_ERR_UPSTREAM_RESET', fault: true },
  { code: 'LB_ERR_UPSTREAM_PROTOCOL', fault: true },
  { code: 'LB_ERR_UPSTREAM_TIMEOUT', fault: false },
  { code: 'LB_ERR_UPSTREAM_BUSY', fault: false },
  { code: 'LB_ERR_CLIENT_GONE', fault: false },
  { code: 'LB_ERR_LOCAL_RESOURCES', fault: false },
];
for (const { code, fault } of FAULTS) {
  test(`isBackendFault: ${code} → ${fault}`, () => {
    assert.equal(isBackendFault(new LbError(code)), fault);
  });
}

test('a TLS error is a connect failure only before the connection was established; after, a broken connection (never replayed as unsent)', () => {
  const tlsError = (code: string) => Object.assign(new Error(code), { code });
  // During the handshake: the connector's callback gets it, no socket was watched yet.
  assert.equal(upstreamErrorCode(tlsError('ERR_SSL_WRONG_VERSION_NUMBER')), 'LB_ERR_UPSTREAM_CONNECT');
  assert.equal(upstreamErrorCode(tlsError('DEPTH_ZERO_SELF_SIGNED_CERT')), 'LB_ERR_UPSTREAM_CONNECT');
  // On a connected (watched) backend socket, as undici reports it.
  const socket = new Socket();
  watchBackendSocket(socket);
  const late = tlsError('ERR_SSL_DECRYPTION_FAILED_OR_BAD_RECORD_MAC');
  socket.emit('error', late);
  assert.equal(upstreamErrorCode(late), 'LB_ERR_UPSTREAM_RESET');
  socket.destroy();
});

/**
 * How a connection the proxy could not open reaches upstreamError: undici's
 * connector passes the socket's own error on untouched (net.connect's errno
 * error, the same object the end-to-end test in
 * test/hardening/local-resource-shortage.test.ts provokes under a real
 * `ulimit -n`); a connect timeout is undici's ConnectTimeoutError (what the
 * connector raises: src/pool/backend-connector.ts). undici 7's SocketError
 * carries no cause.
 */
function connectError(code: string): Error {
  return Object.assign(new Error(`connect ${code} 127.0.0.1:8001 - Local (undefined:undefined)`), {
    errno: -1,
    code,
    syscall: 'connect',
    address: '127.0.0.1',
    port: 8001,
  });
}

const LOCAL_OR_NOT: { desc: string; err: () => unknown; code: ErrorCode }[] = [
  { desc: 'connect EMFILE (out of descriptors)', err: () => connectError('EMFILE'), code: 'LB_ERR_LOCAL_RESOURCES' },
  { desc: 'connect ENFILE', err: () => connectError('ENFILE'), code: 'LB_ERR_LOCAL_RESOURCES' },
  { desc: 'connect ENOBUFS', err: () => connectError('ENOBUFS'), code: 'LB_ERR_LOCAL_RESOURCES' },
  { desc: 'connect ENOMEM', err: () => connectError('ENOMEM'), code: 'LB_ERR_LOCAL_RESOURCES' },
  { desc: 'connect EADDRNOTAVAIL (no free local port)', err: () => connectError('EADDRNOTAVAIL'), code: 'LB_ERR_LOCAL_RESOURCES' },
  { desc: 'EMFILE as the cause of a wrapping error', err: () => new TypeError('fetch failed', { cause: connectError('EMFILE') }), code: 'LB_ERR_LOCAL_RESOURCES' },
  { desc: 'connect ECONNREFUSED', err: () => connectError('ECONNREFUSED'), code: 'LB_ERR_UPSTREAM_CONNECT' },
  { desc: "undici's ConnectTimeoutError", err: () => new ConnectTimeoutError('Connect Timeout Error (attempted address: 127.0.0.1:8001, timeout: 10ms)'), code: 'LB_ERR_UPSTREAM_CONNECT_TIMEOUT' },
];
for (const { desc, err, code } of LOCAL_OR_NOT) {
  test(`upstreamErrorCode: ${desc} → ${code}`, () => {
    assert.equal(upstreamErrorCode(err()), code);
  });
}

test('a local resource error on an established connection is no connect failure: part of the request may have gone out', () => {
  const socket = new Socket();
  watchBackendSocket(socket);
  const late = Object.assign(new Error('write ENOBUFS'), { code: 'ENOBUFS', syscall: 'write' });
  socket.emit('error', late);
  assert.equal(upstreamErrorCode(late), 'LB_ERR_UPSTREAM_RESET');
  socket.destroy();
});

test('upstreamError: LB_ERR_LOCAL_RESOURCES is a 503 with Retry-After, its message (the log line) says what ran short and what to do', () => {
  const cause = connectError('EMFILE');
  const mapped = upstreamError(cause, 'http://127.0.0.1:8001');
  assert.equal(mapped.code, 'LB_ERR_LOCAL_RESOURCES');
  assert.equal(mapped.status, 503);
  assert.deepEqual(mapped.headers, { 'retry-after': '1' });
  assert.equal(mapped.cause, cause);
  assert.equal(
    mapped.message,
    'no connection to backend http://127.0.0.1:8001 could be opened, and the backend is not blamed: this process is out of file descriptors (EMFILE); ' +
      'raise its open-files limit (ulimit -n, or LimitNOFILE= in its systemd unit) or lower the number of client connections',
  );
});

const LOCAL_FAULTS: { code: ErrorCode; local: boolean }[] = [
  { code: 'LB_ERR_LOCAL_RESOURCES', local: true },
  { code: 'LB_ERR_PLUGIN', local: true },
  { code: 'LB_ERR_UPSTREAM_CONNECT', local: false },
  { code: 'LB_ERR_UPSTREAM_CONNECT_TIMEOUT', local: false },
  { code: 'LB_ERR_UPSTREAM_RESET', local: false },
  { code: 'LB_ERR_UPSTREAM_TIMEOUT', local: false },
];
for (const { code, local } of LOCAL_FAULTS) {
  test(`isLocalFault: ${code} → ${local}`, () => {
    assert.equal(isLocalFault(new LbError(code)), local);
  });
}
