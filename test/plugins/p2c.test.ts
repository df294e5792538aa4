import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Candidate, PluginApi, RequestContext, StrategyDefinition } from '../../src/index.js';
import p2cPlugin, { pickTwoChoices } from '../../plugins/p2c.js';

/** Through the contract, as the core calls it. */
const p2c: StrategyDefinition = p2cPlugin;
const api = { pluginName: 'p2c' } as PluginApi;
const ctx = { clientIp: '127.0.0.1', headers: {} } as unknown as RequestContext;

function backend(name: string, activeConnections: number, weight = 1): Candidate {
  return { url: `http://${name}.test:80`, weight, activeConnections, healthy: true };
}

/** A random source that returns `values` in turn. */
function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

const pool = [backend('a', 9), backend('b', 3), backend('c', 0), backend('d', 6, 3)];

test('picks the less loaded of the two sampled', async (t) => {
  // First draw indexes all n, second the other n - 1 (skipping the first).
  const cases = [
    { desc: 'a (9) vs b (3) → b', draws: [0.0, 0.0], want: 'b' },
    { desc: 'b (3) vs a (9) → b', draws: [0.3, 0.0], want: 'b' },
    { desc: 'a (9) vs c (0) → c, though d is the most loaded', draws: [0.1, 0.5], want: 'c' },
    { desc: 'b (3) vs d (6 at weight 3 = 2) → d', draws: [0.25, 0.9], want: 'd' },
    { desc: 'c (0) vs d (2 per weight) → c', draws: [0.6, 0.9], want: 'c' },
    { desc: 'the least loaded overall (c) is not seen unless sampled: a vs b → b', draws: [0.1, 0.1], want: 'b' },
  ];
  for (const { desc, draws, want } of cases) {
    await t.test(desc, () => {
      assert.equal(pickTwoChoices(pool, sequence(...draws))!.url, `http://${want}.test:80`);
    });
  }
});

test('the two samples are always distinct', () => {
  for (const draw of [0, 0.25, 0.5, 0.75, 0.999]) {
    const two = [backend('busy', 5), backend('idle', 0)];
    // Same draw twice would be the same backend without the skip; with it, the idle one is always seen.
    assert.equal(pickTwoChoices(two, sequence(draw, draw))!.url, 'http://idle.test:80');
  }
});

test('one candidate is returned without drawing; none gives undefined', () => {
  const random = (): number => assert.fail('should not draw');
  assert.equal(pickTwoChoices([pool[0]!], random), pool[0]);
  assert.equal(pickTwoChoices([], random), undefined);
});

test('the plugin sends nothing to the most loaded backend of four', async () => {
  const instance = await p2c.create({}, api);
  const seen = new Set<string>();
  for (let i = 0; i < 2000; i++) seen.add(instance.pick(pool, ctx)!.url);
  // a is the most loaded, so it loses every pair it is drawn into.
  assert.deepEqual([...seen].sort(), ['http://b.test:80', 'http://c.test:80', 'http://d.test:80']);
});
