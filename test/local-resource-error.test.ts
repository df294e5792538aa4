/**
 * src/local-resource-error.ts: which errors say this process ran short of
 * its own resources. Errors are shaped as Node raises them (an errno error
 * from net.connect) and as fetch() wraps them (TypeError with the errno
 * error as its cause).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeShortage, localResourceCode, type LocalResourceCode } from '../src/local-resource-error.js';

/** An error as net.connect fails with it: `connect EMFILE 127.0.0.1:8001 - Local (undefined:undefined)`, errno, code, syscall. */
function connectError(code: string): Error {
  return Object.assign(new Error(`connect ${code} 127.0.0.1:8001 - Local (undefined:undefined)`), { errno: -1, code, syscall: 'connect', address: '127.0.0.1', port: 8001 });
}

const fetchFailed = (cause: unknown) => new TypeError('fetch failed', { cause });

const ROWS: { desc: string; err: unknown; code: LocalResourceCode | undefined }[] = [
  { desc: 'EMFILE on the error', err: connectError('EMFILE'), code: 'EMFILE' },
  { desc: 'ENFILE on the error', err: connectError('ENFILE'), code: 'ENFILE' },
  { desc: 'ENOBUFS on the error', err: connectError('ENOBUFS'), code: 'ENOBUFS' },
  { desc: 'ENOMEM on the error', err: connectError('ENOMEM'), code: 'ENOMEM' },
  { desc: 'EADDRNOTAVAIL on the error', err: connectError('EADDRNOTAVAIL'), code: 'EADDRNOTAVAIL' },
  { desc: 'EMFILE as the cause (fetch failed)', err: fetchFailed(connectError('EMFILE')), code: 'EMFILE' },
  { desc: 'ENOBUFS two causes down (a checker wrapping fetch)', err: new Error('probe failed', { cause: fetchFailed(connectError('ENOBUFS')) }), code: 'ENOBUFS' },
  { desc: 'a plain object with the code', err: { code: 'EMFILE' }, code: 'EMFILE' },
  { desc: 'ECONNREFUSED', err: connectError('ECONNREFUSED'), code: undefined },
  { desc: 'ECONNRESET as the cause', err: fetchFailed(connectError('ECONNRESET')), code: undefined },
  { desc: 'ETIMEDOUT', err: connectError('ETIMEDOUT'), code: undefined },
  { desc: 'an undici code', err: Object.assign(new Error('Connect Timeout Error'), { code: 'UND_ERR_CONNECT_TIMEOUT' }), code: undefined },
  { desc: 'EMFILE only in the message', err: new Error('EMFILE'), code: undefined },
  { desc: 'a code that merely starts like one', err: { code: 'EMFILE_X' }, code: undefined },
  { desc: 'an inherited name, not a code', err: { code: 'toString' }, code: undefined },
  { desc: 'a string', err: 'EMFILE', code: undefined },
  { desc: 'null', err: null, code: undefined },
  { desc: 'undefined', err: undefined, code: undefined },
];

for (const { desc, err, code } of ROWS) {
  test(`localResourceCode: ${desc} → ${code ?? 'none'}`, () => {
    assert.equal(localResourceCode(err), code);
  });
}

test('localResourceCode: a cause chain that loops ends, unmatched', () => {
  const a: { code: string; cause?: unknown } = { code: 'ECONNRESET' };
  a.cause = { code: 'EPIPE', cause: a };
  assert.equal(localResourceCode(a), undefined);
});

test('describeShortage: names the code and says what to do', () => {
  assert.match(describeShortage('EMFILE'), /out of file descriptors \(EMFILE\); raise its open-files limit \(ulimit -n, or LimitNOFILE= .*\) or lower the number of client connections/);
  for (const code of ['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM', 'EADDRNOTAVAIL'] as const) {
    assert.ok(describeShortage(code).includes(`(${code}); `), code);
  }
});
