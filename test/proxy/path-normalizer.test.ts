import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { normalizeTarget, splitAbsoluteForm } from '../../src/proxy/path-normalizer.js';

const NORMALIZED: { desc: string; target: string; expected: string }[] = [
  { desc: 'root', target: '/', expected: '/' },
  { desc: 'clean path kept as is', target: '/api/users/42?x=1&y=/../', expected: '/api/users/42?x=1&y=/../' },
  { desc: 'dot-dot resolved', target: '/public/../admin', expected: '/admin' },
  { desc: 'dot-dot resolved, query kept', target: '/a/b/../c?q=../x', expected: '/a/c?q=../x' },
  { desc: 'single dot removed', target: '/a/./b', expected: '/a/b' },
  { desc: 'trailing dot keeps the directory', target: '/a/.', expected: '/a/' },
  { desc: 'trailing dot-dot', target: '/a/b/..', expected: '/a/' },
  { desc: 'to the root exactly', target: '/a/..', expected: '/' },
  { desc: 'duplicate slashes merged', target: '//admin//x', expected: '/admin/x' },
  { desc: 'trailing slash kept', target: '/a/', expected: '/a/' },
  { desc: 'trailing double slash', target: '/a//', expected: '/a/' },
  { desc: 'encoded dots are dots', target: '/public/%2e%2e/admin', expected: '/admin' },
  { desc: 'mixed-case encoded dots', target: '/public/.%2E/admin', expected: '/admin' },
  { desc: 'encoded unreserved letters decoded', target: '/%61dmin', expected: '/admin' },
  { desc: 'encoded slash kept, hex upper-cased', target: '/a%2fb', expected: '/a%2Fb' },
  { desc: 'encoded space kept', target: '/a%20b', expected: '/a%20b' },
  { desc: 'encoded UTF-8 kept', target: '/caf%c3%a9', expected: '/caf%C3%A9' },
  { desc: 'dot-prefixed names are not dot segments', target: '/.well-known/x/..a', expected: '/.well-known/x/..a' },
  { desc: 'semicolon in a normal segment kept', target: '/a;v=1/b', expected: '/a;v=1/b' },
];

const REFUSED: { desc: string; target: string }[] = [
  { desc: 'above the root', target: '/..' },
  { desc: 'above the root later', target: '/a/../../b' },
  { desc: 'encoded dots above the root', target: '/%2e%2e/etc/passwd' },
  { desc: 'dot-dot with path parameter', target: '/public/..;/admin' },
  { desc: 'dot with path parameter', target: '/public/.;x/admin' },
  { desc: 'dot-dot next to an encoded slash', target: '/public/..%2Fadmin' },
  { desc: 'dot-dot after an encoded slash', target: '/public/x%2F..' },
  { desc: 'dot-dot next to an encoded backslash', target: '/public/..%5cadmin' },
  { desc: 'raw backslash', target: '/a\\b' },
  { desc: 'fragment', target: '/a#b' },
  { desc: 'fragment in the query', target: '/a?b#c' },
  { desc: 'encoded NUL', target: '/a%00b' },
  { desc: 'bad escape', target: '/a%zzb' },
  { desc: 'truncated escape', target: '/a%4' },
  { desc: 'not origin-form', target: '*' },
  { desc: 'empty', target: '' },
  { desc: 'non-ASCII', target: '/caf\u00e9' },
];

describe('normalizeTarget', () => {
  for (const { desc, target, expected } of NORMALIZED) {
    it(`${desc}: ${target} → ${expected}`, () => assert.equal(normalizeTarget(target), expected));
  }
  for (const { desc, target } of REFUSED) {
    it(`${desc}: ${JSON.stringify(target)} is refused`, () => assert.equal(normalizeTarget(target), undefined));
  }
  it('returns the same string for a clean target (no copy)', () => {
    const target = '/api/v1/items?page=2';
    assert.equal(normalizeTarget(target), target);
  });
});

describe('splitAbsoluteForm', () => {
  const CASES = [
    { url: 'http://example.com/a?b', expected: { authority: 'example.com', target: '/a?b' } },
    { url: 'HTTPS://Example.com:8443', expected: { authority: 'Example.com:8443', target: '/' } },
    { url: 'http://example.com?x', expected: { authority: 'example.com', target: '/?x' } },
    { url: 'ftp://example.com/', expected: undefined },
    { url: 'http://user@example.com/', expected: undefined },
    { url: 'example.com/a', expected: undefined },
  ];
  for (const { url, expected } of CASES) {
    it(url, () => assert.deepEqual(splitAbsoluteForm(url), expected));
  }
});
