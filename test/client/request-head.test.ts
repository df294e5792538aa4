import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CHUNKED, declaredLength, NO_BODY, requestHead } from '../../src/client/request-head.js';

describe('requestHead', () => {
  it('writes the request line, the headers as given, the framing and keep-alive; adds Host only when missing', () => {
    assert.equal(
      requestHead('GET', '/a?b=1', { host: 'x', accept: '*/*', 'set-me': ['1', '2'], skipped: undefined }, NO_BODY, 'backend:80'),
      'GET /a?b=1 HTTP/1.1\r\nhost: x\r\naccept: */*\r\nset-me: 1\r\nset-me: 2\r\nconnection: keep-alive\r\n\r\n',
    );
    assert.equal(requestHead('GET', '/', {}, NO_BODY, 'backend:80'), 'GET / HTTP/1.1\r\nhost: backend:80\r\nconnection: keep-alive\r\n\r\n');
  });

  it('frames the body itself: its length, chunked, or a 0 length for a POST without one; the caller\'s framing headers are not copied', () => {
    const headers = { host: 'x', 'content-length': '99', 'transfer-encoding': 'gzip', connection: 'close', expect: '100-continue', upgrade: 'x', 'keep-alive': '1' };
    assert.equal(requestHead('PUT', '/', headers, 5, 'b'), 'PUT / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nconnection: keep-alive\r\n\r\n');
    assert.equal(requestHead('POST', '/', headers, CHUNKED, 'b'), 'POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n');
    assert.equal(requestHead('POST', '/', headers, NO_BODY, 'b'), 'POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: keep-alive\r\n\r\n');
    assert.equal(requestHead('DELETE', '/', headers, NO_BODY, 'b'), 'DELETE / HTTP/1.1\r\nhost: x\r\nconnection: keep-alive\r\n\r\n');
  });

  const refused: { desc: string; method?: string; path?: string; headers: Record<string, string | string[]>; message: string }[] = [
    { desc: 'CR LF in a value (a smuggled header)', headers: { host: 'x', 'x-a': 'ok', 'x-b': 'v\r\nInjected: 1' }, message: 'invalid x-b header' },
    { desc: 'a bare LF in a value', headers: { 'x-a': 'v\nx' }, message: 'invalid x-a header' },
    { desc: 'NUL in a value', headers: { 'x-a': 'v\0' }, message: 'invalid x-a header' },
    { desc: 'a character past latin1', headers: { 'x-a': 'v\u0100' }, message: 'invalid x-a header' },
    { desc: 'CR LF in one value of a list', headers: { 'x-a': ['fine', 'bad\r\n'] }, message: 'invalid x-a header' },
    { desc: 'a space in a name', headers: { 'x a': 'v' }, message: 'invalid header name' },
    { desc: 'an empty name', headers: { '': 'v' }, message: 'invalid header name' },
    { desc: 'two Host values', headers: { host: ['a', 'b'] }, message: 'invalid host header' },
    { desc: 'a space in the path', path: '/a b', headers: {}, message: 'invalid request path' },
    { desc: 'an empty path', path: '', headers: {}, message: 'invalid request path' },
    { desc: 'a method that is no token', method: 'GE T', headers: {}, message: 'invalid request method' },
  ];
  for (const { desc, method, path, headers, message } of refused) {
    it(`refuses ${desc}`, () => {
      assert.throws(() => requestHead(method ?? 'GET', path ?? '/', headers, NO_BODY, 'b'), { code: 'UND_ERR_INVALID_ARG', message });
    });
  }

  it('keeps tab and obs-text (0x80-0xFF) in values, as Node does', () => {
    assert.match(requestHead('GET', '/', { 'x-a': 'a\tb\xe9' }, NO_BODY, 'b'), /x-a: a\tb\xe9\r\n/);
  });
});

describe('declaredLength', () => {
  it('reads a decimal Content-Length, CHUNKED without one, and refuses anything else', () => {
    assert.equal(declaredLength({ 'content-length': '42' }), 42);
    assert.equal(declaredLength({}), CHUNKED);
    for (const bad of ['-1', '1e3', ' 4', '4,4']) assert.throws(() => declaredLength({ 'content-length': bad }), { code: 'UND_ERR_INVALID_ARG' });
  });
});
