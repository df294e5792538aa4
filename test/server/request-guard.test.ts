import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isValidHostHeader } from '../../src/server/request-guard.js';

describe('isValidHostHeader', () => {
  const VALID = ['a', 'example.com', 'Example.COM:8080', 'my_host.internal', '127.0.0.1', '127.0.0.1:80', '[::1]', '[::1]:8080', '[2001:db8::1]', 'x:65535'];
  const INVALID = ['', 'a b', 'a/b', 'a@b', 'a:', 'a:b', 'a:65536', 'a:123456', ':80', '[::1', '[]', '[::1]x', '[::1]:', 'a,b', 'a;b', 'é.com', 'a\tb', 'x'.repeat(256)];
  for (const host of VALID) it(`accepts ${JSON.stringify(host)}`, () => assert.equal(isValidHostHeader(host), true));
  for (const host of INVALID) it(`refuses ${JSON.stringify(host.length > 20 ? `${host.slice(0, 10)}…` : host)}`, () => assert.equal(isValidHostHeader(host), false));
});
