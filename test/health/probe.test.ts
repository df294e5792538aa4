/**
 * One probe, as the scheduler runs it: the checker's answer in whatever form
 * the contract allows, turned into one outcome. Pure (no sockets): the
 * checkers here are plain functions.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HealthInstance, HealthTarget } from '../../src/index.js';
import { formatDuration, reasonOf, runProbe } from '../../src/health/probe.js';

const target: HealthTarget = { url: 'http://127.0.0.1:1', protocol: 'http:', hostname: '127.0.0.1', port: 1 };

function checker(check: HealthInstance['check']): HealthInstance {
  return { check };
}

const answers: { desc: string; check: HealthInstance['check']; healthy: boolean; reason: string }[] = [
  { desc: 'true', check: async () => true, healthy: true, reason: 'check passed' },
  { desc: 'false', check: async () => false, healthy: false, reason: 'check failed' },
  { desc: '{ healthy, reason }', check: async () => ({ healthy: false, reason: 'status 503' }), healthy: false, reason: 'status 503' },
  { desc: '{ healthy } without reason', check: async () => ({ healthy: true }), healthy: true, reason: 'check passed' },
  {
    desc: 'a rejection with an errno code',
    check: async () => {
      throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    },
    healthy: false,
    reason: 'ECONNREFUSED',
  },
  {
    desc: 'a synchronous throw',
    check: () => {
      throw new Error('bad config');
    },
    healthy: false,
    reason: 'bad config',
  },
  { desc: 'nonsense', check: async () => 'yes' as unknown as boolean, healthy: false, reason: 'the health checker returned neither true/false nor { healthy, reason }' },
];

for (const { desc, check, healthy, reason } of answers) {
  test(`a checker answering ${desc} → ${healthy ? 'healthy' : 'unhealthy'}: ${reason}`, async () => {
    const outcome = await runProbe(checker(check), target, new AbortController(), 1000);
    assert.ok(outcome);
    assert.equal(outcome.healthy, healthy);
    assert.equal(outcome.reason, reason);
    assert.ok(outcome.ms >= 0 && outcome.ms < 1000);
  });
}

const shortages: { desc: string; check: HealthInstance['check']; inconclusive: string | undefined }[] = [
  {
    desc: 'a rejection with EMFILE (a socket error of the built-in checkers)',
    check: async () => {
      throw Object.assign(new Error('connect EMFILE 127.0.0.1:1 - Local (undefined:undefined)'), { code: 'EMFILE', syscall: 'connect' });
    },
    inconclusive: 'EMFILE',
  },
  {
    desc: 'fetch() failing with ENOBUFS as its cause',
    check: async () => {
      throw new TypeError('fetch failed', { cause: Object.assign(new Error('x'), { code: 'ENOBUFS' }) });
    },
    inconclusive: 'ENOBUFS',
  },
  {
    desc: 'a synchronous throw with EADDRNOTAVAIL',
    check: () => {
      throw Object.assign(new Error('no port'), { code: 'EADDRNOTAVAIL' });
    },
    inconclusive: 'EADDRNOTAVAIL',
  },
  {
    desc: 'a rejection with ECONNREFUSED',
    check: async () => {
      throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    },
    inconclusive: undefined,
  },
  // The checker's own verdict is taken at its word, whatever its reason says.
  { desc: '{ healthy: false, reason: "EMFILE" }', check: async () => ({ healthy: false, reason: 'EMFILE' }), inconclusive: undefined },
];

for (const { desc, check, inconclusive } of shortages) {
  test(`a checker ${desc} → ${inconclusive === undefined ? 'a verdict' : `inconclusive (${inconclusive})`}`, async () => {
    const outcome = await runProbe(checker(check), target, new AbortController(), 1000);
    assert.ok(outcome);
    assert.equal(outcome.inconclusive, inconclusive);
    assert.equal(outcome.healthy, false);
    if (inconclusive !== undefined) assert.equal(outcome.reason, inconclusive);
  });
}

test('at the timeout the signal aborts and the probe fails, even when the checker ignores the signal', async () => {
  let signal: AbortSignal | undefined;
  const started = performance.now();
  const outcome = await runProbe(
    checker((_t, s) => {
      signal = s;
      return new Promise(() => {});
    }),
    target,
    new AbortController(),
    60,
  );
  assert.deepEqual({ healthy: outcome?.healthy, reason: outcome?.reason }, { healthy: false, reason: 'timeout after 60ms' });
  assert.equal(signal?.aborted, true);
  assert.equal((signal?.reason as DOMException).name, 'TimeoutError');
  assert.ok(performance.now() - started < 500);
});

test('an abandoned probe (reload, shutdown) resolves to undefined: its result does not count', async () => {
  const controller = new AbortController();
  const pending = runProbe(checker(() => new Promise(() => {})), target, controller, 10_000);
  controller.abort();
  assert.equal(await pending, undefined);
});

test('reasonOf: errno codes, also wrapped as fetch() does; else the message', () => {
  const rows: { desc: string; err: unknown; reason: string }[] = [
    { desc: 'errno', err: Object.assign(new Error('x'), { code: 'EHOSTUNREACH' }), reason: 'EHOSTUNREACH' },
    { desc: 'fetch failed', err: new TypeError('fetch failed', { cause: Object.assign(new Error('y'), { code: 'ECONNRESET' }) }), reason: 'ECONNRESET' },
    { desc: 'non-errno code', err: Object.assign(new Error('socket hang up'), { code: 'UND_ERR_SOCKET' }), reason: 'socket hang up' },
    { desc: 'a string', err: 'nope', reason: 'nope' },
  ];
  for (const { desc, err, reason } of rows) assert.equal(reasonOf(err), reason, desc);
});

test('formatDuration: whole and tenth seconds as s, the rest as ms', () => {
  assert.equal(formatDuration(1000), '1s');
  assert.equal(formatDuration(1500), '1.5s');
  assert.equal(formatDuration(250), '250ms');
  assert.equal(formatDuration(1234), '1234ms');
});
