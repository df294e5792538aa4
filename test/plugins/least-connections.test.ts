import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Candidate, PluginApi, RequestContext, StrategyDefinition } from '../../src/index.js';
import leastConnectionsPlugin, { pickLeastConnections } from '../../plugins/least-connections.js';

/** Through the contract, as the core calls it. */
const leastConnections: StrategyDefinition = leastConnectionsPlugin;
const api = { pluginName: 'least-connections' } as PluginApi;
const ctx = { clientIp: '127.0.0.1', headers: {} } as unknown as RequestContext;

function backend(name: string, activeConnections: number, weight = 1): Candidate {
  return { url: `http://${name}.test:80`, weight, activeConnections, healthy: true };
}

test('picks the fewest connections per unit of weight', async (t) => {
  const cases = [
    { desc: 'fewest active wins', pool: [backend('a', 5), backend('b', 2), backend('c', 7)], want: 'b' },
    { desc: 'idle one wins', pool: [backend('a', 1), backend('b', 1), backend('c', 0)], want: 'c' },
    { desc: 'weight 3 with 3 active (1 each) beats weight 1 with 2', pool: [backend('a', 2, 1), backend('b', 3, 3)], want: 'b' },
    { desc: 'weight 2 with 5 active (2.5) loses to weight 1 with 2', pool: [backend('a', 5, 2), backend('b', 2, 1)], want: 'b' },
    { desc: 'weight 4 with 7 active (1.75) beats weight 1 with 2', pool: [backend('a', 2, 1), backend('b', 7, 4)], want: 'b' },
    { desc: 'single candidate', pool: [backend('a', 100)], want: 'a' },
  ];
  for (const { desc, pool, want } of cases) {
    await t.test(desc, async () => {
      // Whatever the rotation cursor, load decides.
      for (let start = 0; start < pool.length; start++) {
        assert.equal(pickLeastConnections(pool, { next: start })!.url, `http://${want}.test:80`);
      }
      const instance = await leastConnections.create({}, api);
      assert.equal(instance.pick(pool, ctx)!.url, `http://${want}.test:80`);
    });
  }
});

test('ties take turns instead of all going to the first', () => {
  const pool = [backend('a', 0), backend('b', 0), backend('c', 0)];
  const cursor = { next: 0 };
  const picks = Array.from({ length: 300 }, () => pickLeastConnections(pool, cursor)!.url);
  assert.deepEqual(picks.slice(0, 3), pool.map((c) => c.url));
  for (const c of pool) assert.equal(picks.filter((u) => u === c.url).length, 100);
});

test('ties among a subset alternate evenly', () => {
  const pool = [backend('a', 1), backend('b', 4), backend('c', 1)];
  const cursor = { next: 0 };
  const picks = Array.from({ length: 10 }, () => pickLeastConnections(pool, cursor)!.url);
  assert.deepEqual(picks, Array.from({ length: 10 }, (_, i) => pool[i % 2 === 0 ? 0 : 2]!.url));
});

test('weighted ties: equal ratios count as equal', () => {
  const pool = [backend('a', 2, 1), backend('b', 4, 2)];
  const cursor = { next: 0 };
  const picks = Array.from({ length: 4 }, () => pickLeastConnections(pool, cursor)!.url);
  assert.deepEqual(picks, [pool[0]!.url, pool[1]!.url, pool[0]!.url, pool[1]!.url]);
});

test('returns undefined for no candidates', () => {
  assert.equal(pickLeastConnections([], { next: 3 }), undefined);
});
