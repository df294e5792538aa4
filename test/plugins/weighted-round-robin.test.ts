import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Candidate, PluginApi, RequestContext, StrategyDefinition } from '../../src/index.js';
import weightedRoundRobinPlugin, { pickSmoothWeighted, type SmoothWeight } from '../../plugins/weighted-round-robin.js';

/** Through the contract, as the core calls it. */
const weightedRoundRobin: StrategyDefinition = weightedRoundRobinPlugin;
const api = { pluginName: 'weighted-round-robin', backendUrls: new Set<string>() } as unknown as PluginApi;
const ctx = { clientIp: '127.0.0.1', headers: {} } as unknown as RequestContext;

function backend(name: string, weight: number): Candidate {
  return { url: `http://${name}.test:80`, weight, activeConnections: 0, healthy: true };
}

/** Short names of `count` picks: 'a' for http://a.test:80. */
function run(pool: readonly Candidate[], state: Map<string, SmoothWeight>, count: number): string[] {
  const names: string[] = [];
  for (let i = 0; i < count; i++) names.push(new URL(pickSmoothWeighted(pool, state)!.url).hostname.split('.')[0]!);
  return names;
}

function count(names: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const n of names) counts[n] = (counts[n] ?? 0) + 1;
  return counts;
}

test('shares are exactly proportional to weight', async (t) => {
  const cases = [
    { desc: '1:2:3 over 600', weights: { a: 1, b: 2, c: 3 }, picks: 600, want: { a: 100, b: 200, c: 300 } },
    { desc: '5:1:1 over 700', weights: { a: 5, b: 1, c: 1 }, picks: 700, want: { a: 500, b: 100, c: 100 } },
    { desc: 'equal weights over 300', weights: { a: 2, b: 2, c: 2 }, picks: 300, want: { a: 100, b: 100, c: 100 } },
    { desc: 'one backend', weights: { a: 3 }, picks: 10, want: { a: 10 } },
  ];
  for (const { desc, weights, picks, want } of cases) {
    await t.test(desc, async () => {
      const pool = Object.entries(weights).map(([name, w]) => backend(name, w));
      const instance = await weightedRoundRobin.create({}, api);
      const names: string[] = [];
      for (let i = 0; i < picks; i++) names.push(new URL(instance.pick(pool, ctx)!.url).hostname.split('.')[0]!);
      assert.deepEqual(count(names), want);
    });
  }
});

test('weights 5:1:1 interleave as nginx does (a a b a c a a), never two light picks in a row', () => {
  const pool = [backend('a', 5), backend('b', 1), backend('c', 1)];
  const names = run(pool, new Map(), 700);
  assert.deepEqual(names.slice(0, 7), ['a', 'a', 'b', 'a', 'c', 'a', 'a']);
  assert.deepEqual(names.slice(7, 14), names.slice(0, 7), 'the cycle repeats');
  for (let i = 1; i < names.length; i++) {
    assert.ok(names[i - 1] === 'a' || names[i] === 'a', `picks ${i - 1} and ${i} are both light: ${names[i - 1]}, ${names[i]}`);
  }
});

test('state is keyed by URL, so recreated candidate objects continue the cycle', () => {
  const state = new Map<string, SmoothWeight>();
  const before = run([backend('a', 5), backend('b', 1), backend('c', 1)], state, 3);
  const after = run([backend('a', 5), backend('b', 1), backend('c', 1)], state, 4);
  assert.deepEqual([...before, ...after], ['a', 'a', 'b', 'a', 'c', 'a', 'a']);
});

test('a backend leaving and rejoining keeps the proportions of each candidate set', () => {
  const a = backend('a', 1);
  const b = backend('b', 2);
  const c = backend('c', 3);
  const state = new Map<string, SmoothWeight>();
  run([a, b, c], state, 4); // stop mid-cycle
  // c leaves: a and b share 1:2 over every whole cycle of 3.
  const without = count(run([a, b], state, 300));
  assert.ok(Math.abs(without.a! - 100) <= 2 && Math.abs(without.b! - 200) <= 2, JSON.stringify(without));
  // c rejoins, a newcomer d joins: 1:2:3:4 over 1000.
  const d = backend('d', 4);
  const all = count(run([a, b, c, d], state, 1000));
  for (const [name, weight] of Object.entries({ a: 1, b: 2, c: 3, d: 4 })) {
    assert.ok(Math.abs(all[name]! - weight * 100) <= 4, `${name}: ${all[name]} of 1000 for weight ${weight}`);
  }
  // The current weights stay bounded: their sum, frozen ones included, is 0.
  let sum = 0;
  for (const slot of state.values()) sum += slot.current;
  assert.equal(sum, 0);
});

test('a newcomer is interleaved, not handed a burst', () => {
  const state = new Map<string, SmoothWeight>();
  run([backend('a', 1), backend('b', 1)], state, 101);
  const names = run([backend('a', 1), backend('b', 1), backend('n', 1)], state, 30);
  for (let i = 1; i < names.length; i++) assert.ok(!(names[i - 1] === 'n' && names[i] === 'n'), names.join(''));
  assert.equal(count(names).n, 10);
});

test('returns undefined for no candidates', () => {
  assert.equal(pickSmoothWeighted([], new Map()), undefined);
});

test('a reloaded instance carries on the cycle it inherits', async () => {
  const pool = [backend('a', 5), backend('b', 1), backend('c', 1)];
  const first = await weightedRoundRobin.create({}, api);
  first.pick(pool, ctx);
  first.pick(pool, ctx);
  const second = await weightedRoundRobin.create({}, { ...api, inherited: first.handOver!() } as PluginApi);
  assert.equal(second.pick(pool, ctx), pool[1]);
});

test('a backend the configuration no longer lists loses its slot once the instances listing it have closed; the cycle starts afresh', async () => {
  const [a, b, c] = [backend('a', 5), backend('b', 1), backend('c', 1)];
  const urls = (...members: Candidate[]) => ({ ...api, backendUrls: new Set(members.map((m) => m.url)) }) as PluginApi;
  const first = await weightedRoundRobin.create({}, urls(a, b, c));
  first.pick([a, b, c], ctx);
  first.pick([a, b, c], ctx);
  // A failed build closes its instance first: the running one keeps c's slot and its place in the cycle.
  const failed = await weightedRoundRobin.create({}, { ...urls(a, b), inherited: first.handOver!() } as PluginApi);
  await failed.close!();
  const second = await weightedRoundRobin.create({}, { ...urls(a, b), inherited: first.handOver!() } as PluginApi);
  assert.equal(second.pick([a, b, c], ctx), b, 'the third pick of a a b a c a a, on the state both instances share');
  await first.close!();
  const state = (second.handOver!() as { byUrl: Map<string, SmoothWeight> }).byUrl;
  assert.deepEqual([...state.keys()], [a.url, b.url]);
  assert.deepEqual(run([a, b], state, 6), ['a', 'a', 'a', 'b', 'a', 'a']);
});

test('a reload that changes weights starts a fresh cycle: 1000:1000 → 1:1 alternates at once instead of a burst to one backend', async () => {
  const first = await weightedRoundRobin.create({}, api);
  const before = [backend('a', 1000), backend('b', 1000)];
  // Stop at every point of the old cycle: wherever it stopped, the new weights must interleave at once.
  for (let stop = 1; stop <= 2000; stop += 37) {
    const state = new Map<string, SmoothWeight>();
    run(before, state, stop);
    const names = run([backend('a', 1), backend('b', 1)], state, 20);
    for (let i = 1; i < names.length; i++) assert.notEqual(names[i], names[i - 1], `after ${stop} picks at 1000:1000: ${names.join('')}`);
  }
  // Through the plugin, across a reload (handOver): 3:1 → 1:3 gives 1:3 shares over the very first cycle.
  for (let i = 0; i < 3; i++) first.pick(before, ctx);
  const second = await weightedRoundRobin.create({}, { ...api, inherited: first.handOver!() } as PluginApi);
  const reweighted = [backend('a', 1), backend('b', 3)];
  const names: string[] = [];
  for (let i = 0; i < 4; i++) names.push(new URL(second.pick(reweighted, ctx)!.url).hostname.split('.')[0]!);
  assert.deepEqual(count(names), { a: 1, b: 3 });
});
