import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lessLoaded } from '../../src/index.js';

const cases: { desc: string; a: [active: number, weight: number]; b: [active: number, weight: number]; want: boolean }[] = [
  { desc: 'fewer in flight, same weight', a: [1, 1], b: [2, 1], want: true },
  { desc: 'more in flight, same weight', a: [2, 1], b: [1, 1], want: false },
  { desc: 'equal: not less either way', a: [3, 1], b: [3, 1], want: false },
  { desc: 'both idle: a tie', a: [0, 1], b: [0, 5], want: false },
  { desc: 'heavier backend carries more before it is more loaded', a: [3, 2], b: [2, 1], want: true },
  { desc: 'equal ratios tie exactly (3/3 vs 1/1)', a: [3, 3], b: [1, 1], want: false },
  { desc: 'fractional weights', a: [1, 0.5], b: [1, 0.25], want: true },
];

for (const { desc, a, b, want } of cases) {
  test(`lessLoaded: ${desc}`, () => {
    const ca = { activeConnections: a[0], weight: a[1] };
    const cb = { activeConnections: b[0], weight: b[1] };
    assert.equal(lessLoaded(ca, cb), want);
  });
}
