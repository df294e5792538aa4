/**
 * src/proxy/undici-parts.ts loads undici's Pool, connector and connect
 * timeout error by file path, past the package index. If an undici upgrade
 * moves or changes them, this fails (instead of the proxy at startup or,
 * worse, silently using a different class).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildConnector, errors, Pool } from 'undici';
import { buildConnector as buildConnectorPart, ConnectTimeoutError, loadPool } from '../../src/proxy/undici-parts.js';

test('undici-parts are the very Pool, buildConnector and ConnectTimeoutError undici exports', () => {
  assert.equal(loadPool(), Pool);
  assert.equal(buildConnectorPart, buildConnector);
  assert.equal(ConnectTimeoutError, errors.ConnectTimeoutError);
  assert.equal(new ConnectTimeoutError('x').code, 'UND_ERR_CONNECT_TIMEOUT');
});
