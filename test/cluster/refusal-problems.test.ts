/** refusalProblems: what the primary logs when workers could not take a reload — each problem once, named by worker unless all had it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { refusalProblems } from '../../src/cluster/primary.js';
import type { WorkerAnswer, WorkerSlot } from '../../src/cluster/worker-slot.js';

function answer(id: number, ok: boolean, problems: string[] = []): WorkerAnswer {
  return { slot: { id } as WorkerSlot, ok, problems, answered: true };
}

const cases: { desc: string; answers: WorkerAnswer[]; expected: string[] }[] = [
  {
    desc: 'the same problem in every worker: once, as it is',
    answers: [answer(1, false, ['cannot listen on 127.0.0.1:80']), answer(2, false, ['cannot listen on 127.0.0.1:80'])],
    expected: ['cannot listen on 127.0.0.1:80'],
  },
  {
    desc: 'a problem in one worker of two: named by that worker',
    answers: [answer(1, true), answer(2, false, ['lb.toml:9:1 pipeline[0].plugin: failed'])],
    expected: ['worker 2: lb.toml:9:1 pipeline[0].plugin: failed'],
  },
  {
    desc: 'different problems: each with its workers, in the order they came',
    answers: [answer(1, false, ['a', 'b']), answer(2, false, ['b']), answer(3, false, ['c'])],
    expected: ['worker 1: a', 'worker 1, 2: b', 'worker 3: c'],
  },
  { desc: 'one worker taking part: its problem as it is', answers: [answer(1, false, ['x'])], expected: ['x'] },
  { desc: 'no refusal: nothing', answers: [answer(1, true), answer(2, true)], expected: [] },
];

for (const { desc, answers, expected } of cases) {
  test(desc, () => assert.deepEqual(refusalProblems(answers), expected));
}
