import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { responseHeaders } from '../../src/proxy/hop-by-hop.js';

const raw = (...pairs: string[]): string[] => pairs;

describe('responseHeaders (raw header pairs → the header object written to the client)', () => {
  it('lower-cases names and keeps values as sent', () => {
    assert.deepEqual(responseHeaders(raw('Content-Type', 'text/plain', 'X-Custom-THING', 'A b')), {
      'content-type': 'text/plain',
      'x-custom-thing': 'A b',
    });
  });

  it('keeps obs-text characters (0x80-0xFF) of a value as they are', () => {
    assert.equal(responseHeaders(['X-Bytes', 'a\x80\xe9\xff'])['x-bytes'], 'a\x80\xe9\xff');
  });

  it('drops every hop-by-hop header', () => {
    const out = responseHeaders(
      raw('Connection', 'keep-alive', 'Keep-Alive', 'timeout=5', 'Transfer-Encoding', 'chunked', 'TE', 'x', 'Trailer', 'y', 'Upgrade', 'h2c', 'Proxy-Connection', 'z', 'Date', 'd'),
    );
    assert.deepEqual(out, { date: 'd' });
  });

  it('drops the headers a Connection header nominates, in any case, over several Connection lines', () => {
    const out = responseHeaders(raw('Connection', 'close, X-Internal', 'X-INTERNAL', '1', 'connection', 'x-other', 'X-Other', '2', 'X-Kept', '3'));
    assert.deepEqual(out, { 'x-kept': '3' });
  });

  it('a plain "Connection: Keep-Alive" or "close" nominates nothing else', () => {
    assert.deepEqual(responseHeaders(raw('Connection', 'Keep-Alive', 'Server', 's')), { server: 's' });
    assert.deepEqual(responseHeaders(raw('Connection', 'CLOSE', 'Server', 's')), { server: 's' });
  });

  it('repeated names become arrays in arrival order', () => {
    assert.deepEqual(responseHeaders(raw('Set-Cookie', 'a=1', 'set-cookie', 'b=2', 'SET-COOKIE', 'c=3')), { 'set-cookie': ['a=1', 'b=2', 'c=3'] });
  });

  it('names that exist on Object.prototype are own properties, never a prototype write', () => {
    const out = responseHeaders(raw('__proto__', 'x', 'constructor', 'y', 'toString', 'z'));
    assert.equal(Object.getPrototypeOf(out), Object.prototype);
    assert.deepEqual(Object.keys(out), ['__proto__', 'constructor', 'tostring']);
    assert.equal(Object.getOwnPropertyDescriptor(out, '__proto__')?.value, 'x');
    assert.equal(out.constructor, 'y');
  });
});
