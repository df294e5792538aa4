/** Durations and sizes as lb.toml spells them, and the bounds a duration may be given. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  durationBoundsProblem,
  durationSchema,
  MAX_TIMER_DURATION,
  parseDuration,
  parseSize,
  TIMER_BOUNDS,
} from '../src/units.js';

/** What Node's setTimeout can wait; past it a timer fires after 1 ms. */
const NODE_TIMER_LIMIT_MS = 2 ** 31 - 1;

test('parseDuration: every unit, fractions rounded to whole milliseconds', () => {
  const rows: [string, number][] = [
    ['250ms', 250],
    ['5s', 5000],
    ['1.5s', 1500],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['0.4ms', 0],
    ['500h', 1_800_000_000],
  ];
  for (const [text, ms] of rows) assert.equal(parseDuration(text), ms, text);
  for (const bad of ['5', '5 s', '-1s', '1d', '']) assert.throws(() => parseDuration(bad), /is not a duration/, bad);
});

test('parseSize: powers of 1024', () => {
  assert.equal(parseSize('512B'), 512);
  assert.equal(parseSize('16KB'), 16 * 1024);
  assert.equal(parseSize('1.5MB'), 1.5 * 1024 ** 2);
  assert.throws(() => parseSize('10 MB'), /is not a size/);
});

test('MAX_TIMER_DURATION leaves room under the timer limit for the jitter and margins added to configured waits', () => {
  const max = parseDuration(MAX_TIMER_DURATION);
  // Health intervals get +5% jitter; a stopping worker gets 2 s past shutdown_grace.
  assert.ok(max * 1.05 < NODE_TIMER_LIMIT_MS, `${max} ms × 1.05 must stay under ${NODE_TIMER_LIMIT_MS}`);
  assert.ok(max + 2000 < NODE_TIMER_LIMIT_MS);
});

const boundsRows: { desc: string; text: string; bounds: typeof TIMER_BOUNDS; problem: RegExp | undefined }[] = [
  { desc: 'the smallest timer', text: '1ms', bounds: TIMER_BOUNDS, problem: undefined },
  { desc: 'the largest timer', text: MAX_TIMER_DURATION, bounds: TIMER_BOUNDS, problem: undefined },
  { desc: 'the largest timer in ms', text: '1800000000ms', bounds: TIMER_BOUNDS, problem: undefined },
  { desc: 'zero', text: '0ms', bounds: TIMER_BOUNDS, problem: /^must be longer than 0 \(got "0ms"\)$/ },
  { desc: 'zero seconds', text: '0s', bounds: TIMER_BOUNDS, problem: /^must be longer than 0 \(got "0s"\)$/ },
  { desc: 'rounds to zero', text: '0.4ms', bounds: TIMER_BOUNDS, problem: /longer than 0 \(got "0\.4ms", which rounds to 0ms\)/ },
  { desc: 'just past the largest', text: '1800000001ms', bounds: TIMER_BOUNDS, problem: /^must be at most "500h", about 20 days: Node's timers cannot wait longer than 24\.8 days \(got "1800000001ms"\)$/ },
  { desc: 'past what Node can wait', text: '1000h', bounds: TIMER_BOUNDS, problem: /at most "500h".*got "1000h"/ },
  { desc: 'a custom minimum', text: '500ms', bounds: { min: '1s' }, problem: /^must be at least "1s" \(got "500ms"\)$/ },
  { desc: 'a custom maximum', text: '2h', bounds: { max: '1h' }, problem: /^must be at most "1h" \(got "2h"\)$/ },
  { desc: 'zero with no minimum', text: '0s', bounds: { max: MAX_TIMER_DURATION }, problem: undefined },
  { desc: 'not a duration (the pattern reports it)', text: 'soon', bounds: TIMER_BOUNDS, problem: undefined },
];

for (const row of boundsRows) {
  test(`durationBoundsProblem: ${row.desc}`, () => {
    const problem = durationBoundsProblem(row.text, row.bounds);
    if (row.problem === undefined) assert.equal(problem, undefined);
    else assert.match(problem ?? '(none)', row.problem);
  });
}

test('durationSchema: bounds go into the schema and its description; without bounds nothing changes', () => {
  const bounded = durationSchema('Time between probes.', '5s', TIMER_BOUNDS);
  assert.deepEqual(bounded.durationBounds, TIMER_BOUNDS);
  assert.equal(bounded.default, '5s');
  assert.match(String(bounded.description), /Time between probes\. A duration such as .* At least 1ms, at most 500h\.$/);
  const open = durationSchema('Cookie lifetime.');
  assert.equal('durationBounds' in open, false);
  assert.equal('default' in open, false);
  assert.doesNotMatch(String(open.description), /at most/);
});
