/**
 * plugins/retry/budget.ts: the retry budget on its own, time given as
 * milliseconds. Each row plays a script of requests and retries and checks
 * which retries the budget allowed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RETRY_BUDGET_WINDOW_S, RetryBudget } from '../../plugins/retry/budget.js';

/** `requests` first tries at `atMs`, or `retries` retry attempts at `atMs` (how many were allowed is collected). */
type Step = { atMs: number; requests: number } | { atMs: number; retries: number };

const rows: { desc: string; ratio: number; minPerSecond: number; steps: Step[]; allowed: number[] }[] = [
  {
    desc: 'ratio 0.2, no floor: two retries per ten requests',
    ratio: 0.2,
    minPerSecond: 0,
    steps: [{ atMs: 0, requests: 10 }, { atMs: 0, retries: 5 }],
    allowed: [2],
  },
  {
    desc: 'no requests yet: only the floor, for the whole window',
    ratio: 0.2,
    minPerSecond: 1,
    steps: [{ atMs: 500, retries: 15 }],
    allowed: [RETRY_BUDGET_WINDOW_S],
  },
  {
    desc: 'the floor adds to the ratio',
    ratio: 0.5,
    minPerSecond: 1,
    steps: [{ atMs: 0, requests: 10 }, { atMs: 0, retries: 20 }],
    allowed: [5 + RETRY_BUDGET_WINDOW_S],
  },
  {
    desc: 'ratio 0 and no floor: never',
    ratio: 0,
    minPerSecond: 0,
    steps: [{ atMs: 0, requests: 100 }, { atMs: 0, retries: 1 }],
    allowed: [0],
  },
  {
    desc: 'refused retries are not spent: room comes back with more requests',
    ratio: 0.5,
    minPerSecond: 0,
    steps: [{ atMs: 0, requests: 2 }, { atMs: 0, retries: 3 }, { atMs: 100, requests: 2 }, { atMs: 100, retries: 3 }],
    allowed: [1, 1],
  },
  {
    desc: 'requests older than the window no longer give room',
    ratio: 0.5,
    minPerSecond: 0,
    steps: [{ atMs: 0, requests: 10 }, { atMs: RETRY_BUDGET_WINDOW_S * 1000, retries: 1 }],
    allowed: [0],
  },
  {
    desc: 'requests in the window\'s oldest second still count',
    ratio: 0.5,
    minPerSecond: 0,
    steps: [{ atMs: 999, requests: 10 }, { atMs: RETRY_BUDGET_WINDOW_S * 1000 - 1, retries: 10 }],
    allowed: [5],
  },
  {
    desc: 'retries spent more than a window ago are forgotten',
    ratio: 0,
    minPerSecond: 1,
    steps: [{ atMs: 0, retries: 20 }, { atMs: 3000, retries: 20 }, { atMs: RETRY_BUDGET_WINDOW_S * 1000, retries: 20 }],
    allowed: [RETRY_BUDGET_WINDOW_S, 0, RETRY_BUDGET_WINDOW_S],
  },
  {
    desc: 'a sliding window: what one second spent comes back ten seconds later, not sooner',
    ratio: 0,
    minPerSecond: 1,
    steps: [
      { atMs: 0, retries: 4 },
      { atMs: 5000, retries: 10 },
      { atMs: RETRY_BUDGET_WINDOW_S * 1000 - 1, retries: 1 },
      { atMs: RETRY_BUDGET_WINDOW_S * 1000, retries: 10 },
    ],
    allowed: [4, 6, 0, 4],
  },
  {
    desc: 'a long silence empties everything',
    ratio: 0.5,
    minPerSecond: 0,
    steps: [{ atMs: 0, requests: 100 }, { atMs: 1000 * 3600, requests: 2 }, { atMs: 1000 * 3600, retries: 5 }],
    allowed: [1],
  },
  {
    desc: 'a clock that steps back counts into the newest second',
    ratio: 0.5,
    minPerSecond: 0,
    steps: [{ atMs: 5000, requests: 2 }, { atMs: 1000, requests: 2 }, { atMs: 1000, retries: 5 }],
    allowed: [2],
  },
];

for (const row of rows) {
  test(`RetryBudget: ${row.desc}`, () => {
    const budget = new RetryBudget(row.ratio, row.minPerSecond);
    const allowed: number[] = [];
    for (const step of row.steps) {
      if ('requests' in step) {
        for (let i = 0; i < step.requests; i++) budget.recordRequest(step.atMs);
      } else {
        let yes = 0;
        for (let i = 0; i < step.retries; i++) if (budget.tryRetry(step.atMs)) yes++;
        allowed.push(yes);
      }
    }
    assert.deepEqual(allowed, row.allowed);
  });
}

test('RetryBudget: counts are those of the window', () => {
  const budget = new RetryBudget(1, 0);
  for (let i = 0; i < 4; i++) budget.recordRequest(0);
  assert.equal(budget.tryRetry(2000), true);
  assert.deepEqual(budget.counts, { requests: 4, retries: 1 });
  budget.recordRequest(RETRY_BUDGET_WINDOW_S * 1000);
  assert.deepEqual(budget.counts, { requests: 1, retries: 1 }, 'the requests of second 0 left the window, the retry of second 2 did not');
});
