/**
 * Warnings about single requests are logged without flooding: the first of
 * a kind at once, the others like it counted and reported once per window,
 * every failure accounted for.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { Logger } from '../../src/index.js';
import { RepeatedWarnings } from '../../src/server/repeated-warnings.js';
import { startSwitchyard, type RunningSwitchyard } from '../../src/testing.js';
import { freePort } from '../helpers/backends.js';
import { request } from '../helpers/http-client.js';
import { within } from '../helpers/waiting.js';

interface Line {
  readonly fields: Record<string, unknown>;
  readonly message: string;
}

function recordingLogger(onWarn: () => void = () => {}): { logger: Logger; lines: Line[] } {
  const lines: Line[] = [];
  const ignore = () => {};
  const warn = (fields: object | string, message?: string) => {
    lines.push({ fields: fields as Record<string, unknown>, message: message ?? '' });
    onWarn();
  };
  return { logger: { debug: ignore, info: ignore, warn, error: ignore }, lines };
}

test('RepeatedWarnings: the first of a kind at once, the rest of its window in one line, a new kind at once, a quiet kind forgotten', async () => {
  let wake = () => {};
  const { logger, lines } = recordingLogger(() => wake());
  const nextLine = () => within(new Promise<void>((resolve) => (wake = resolve)), 5000, 'no warning logged within 5 s');
  const warnings = new RepeatedWarnings(logger, 200);

  warnings.warn('LB_ERR_UPSTREAM_CONNECT', 'web\0b1', { n: 1 }, 'cannot reach b1');
  assert.deepEqual(lines, [{ fields: { n: 1 }, message: 'cannot reach b1' }]);
  for (let n = 2; n <= 6; n++) warnings.warn('LB_ERR_UPSTREAM_CONNECT', 'web\0b1', { n }, 'cannot reach b1');
  warnings.warn('LB_ERR_UPSTREAM_CONNECT', 'web\0b2', { n: 7 }, 'cannot reach b2');
  assert.deepEqual(
    lines.map((l) => l.message),
    ['cannot reach b1', 'cannot reach b2'],
    'repeats are counted; another backend is another kind',
  );

  // Still failing when the window ends: one line for the five, carrying the latest one's fields.
  const windowEnded = nextLine();
  warnings.warn('LB_ERR_UPSTREAM_CONNECT', 'web\0b2', { n: 8 }, 'cannot reach b2');
  await windowEnded;
  const summaries = lines.slice(2);
  assert.equal(summaries.length, 1, JSON.stringify(lines));
  assert.deepEqual(summaries[0]!.fields, { n: 6, repeated: 5 });
  assert.match(summaries[0]!.message, /^cannot reach b1 \(5 more like it in the last 0\.[2-9]s\)$/);
  await nextLine();
  assert.deepEqual(lines[3]!.fields, { n: 8, repeated: 1 }, 'b2 reported at its own window end');

  // b1 recurred within its window, so a new window was opened: one more, then quiet.
  warnings.warn('LB_ERR_UPSTREAM_CONNECT', 'web\0b1', { n: 9 }, 'cannot reach b1');
  assert.equal(lines.length, 4, 'counted in the window that the summary opened');
  await nextLine();
  assert.deepEqual(lines[4]!.fields, { n: 9, repeated: 1 });
  // A window with nothing in it ends the kind: the next one is logged at once.
  await new Promise((resolve) => setTimeout(resolve, 450));
  assert.equal(lines.length, 5, 'a quiet window logs nothing');
  warnings.warn('LB_ERR_UPSTREAM_CONNECT', 'web\0b1', { n: 10 }, 'cannot reach b1');
  assert.deepEqual(lines[5], { fields: { n: 10 }, message: 'cannot reach b1' });

  // Closing reports what is counted and not yet reported.
  warnings.warn('LB_ERR_UPSTREAM_CONNECT', 'web\0b1', { n: 11 }, 'cannot reach b1');
  warnings.flush();
  assert.deepEqual(lines[6]!.fields, { n: 11, repeated: 1 });
  assert.equal(lines.length, 7);
});

test('RepeatedWarnings: past 256 kinds, new ones are told apart by code only', () => {
  const { logger, lines } = recordingLogger();
  const warnings = new RepeatedWarnings(logger, 60_000);
  for (let i = 0; i < 256; i++) warnings.warn('LB_ERR_PLUGIN', `message ${i}`, {}, `plugin failed ${i}`);
  assert.equal(lines.length, 256);
  for (let i = 256; i < 1000; i++) warnings.warn('LB_ERR_PLUGIN', `message ${i}`, {}, `plugin failed ${i}`);
  assert.equal(lines.length, 257, 'one more kind (the code), then counted');
  warnings.warn('LB_ERR_PLUGIN', 'message 3', {}, 'plugin failed 3');
  assert.equal(lines.length, 257, 'a kind already tracked still counts on its own');
  warnings.flush();
  assert.deepEqual(
    lines.filter((l) => l.fields.repeated !== undefined).map((l) => [l.message.replace(/ \(.*/, ''), l.fields.repeated]),
    [
      ['plugin failed 3', 1],
      ['plugin failed 999', 743],
    ],
  );
});

test('a pool whose backend is down: 300 failed requests make a few warning lines, and their counts add up to 300', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  let lb: RunningSwitchyard | undefined;
  try {
    // Nothing listens there: connections are refused, then the backend is marked down (503s).
    lb = await startSwitchyard({
      captureLogs: true,
      toml: `
        [server]
        listen = "127.0.0.1:0"
        [pools.web]
        backends = [{ url = "http://127.0.0.1:${await freePort()}" }]
      `,
    });
    const statuses = await Promise.all(Array.from({ length: 300 }, () => request(lb!.url, { agent }).then((r) => r.status)));
    assert.ok(statuses.every((s) => s === 502 || s === 503), statuses.join(','));
    const whileFailing = lb.logs.filter((l) => l.level === 40).length;
    await lb.close();
    const warnings = lb.logs.filter((l) => l.level === 40);
    assert.ok(whileFailing <= 3, `${whileFailing} warnings while failing, one per kind: ${warnings.map((l) => l.msg).join('\n')}`);
    // A line logged at once stands for one request; a window's line for the `repeated` it counted.
    const accounted = warnings.reduce((sum, l) => sum + ((l.repeated as number | undefined) ?? 1), 0);
    assert.equal(accounted, 300, warnings.map((l) => `${l.msg} ${String(l.repeated)}`).join('\n'));
  } finally {
    agent.destroy();
    await lb?.close();
  }
});
