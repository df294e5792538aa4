/**
 * src/proxy/undici-parts.ts loads undici's Pool and header interning by
 * file path, past the package index. If an undici upgrade moves or changes
 * them, this fails (instead of the proxy at startup or, worse, silently
 * using a different class).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Pool, util } from 'undici';
import { headerNameToString, Pool as PoolPart } from '../../src/proxy/undici-parts.js';

test('undici-parts are the very Pool and headerNameToString undici exports', () => {
  assert.equal(PoolPart, Pool);
  assert.equal(headerNameToString, util.headerNameToString);
  assert.equal(headerNameToString(Buffer.from('Content-Type')), 'content-type');
});
