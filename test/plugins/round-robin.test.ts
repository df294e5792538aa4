import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Candidate, PluginApi, RequestContext, StrategyDefinition } from '../../src/index.js';
import roundRobinPlugin, { pickRoundRobin } from '../../plugins/round-robin.js';

/** Through the contract, as the core calls it. */
const roundRobin: StrategyDefinition = roundRobinPlugin;
const api = { pluginName: 'round-robin' } as PluginApi;
const ctx = { clientIp: '127.0.0.1', headers: {} } as unknown as RequestContext;

function backends(count: number): Candidate[] {
  const list: Candidate[] = [];
  for (let i = 0; i < count; i++) list.push({ url: `http://10.0.0.${i + 1}:80`, weight: 1, activeConnections: 0, healthy: true });
  return list;
}

function tally(picks: (Candidate | undefined)[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const c of picks) counts[c!.url] = (counts[c!.url] ?? 0) + 1;
  return counts;
}

test('300 picks over 3 backends give 100 each, in config order', async () => {
  const pool = backends(3);
  const instance = await roundRobin.create({}, api);
  const picks = Array.from({ length: 300 }, () => instance.pick(pool, ctx));
  assert.deepEqual(picks.slice(0, 4), [pool[0], pool[1], pool[2], pool[0]]);
  assert.deepEqual(Object.values(tally(picks)), [100, 100, 100]);
});

test('keeps rotating over whatever candidates are current', () => {
  const pool = backends(4);
  const cursor = { next: 0 };
  assert.equal(pickRoundRobin(pool, cursor), pool[0]);
  assert.equal(pickRoundRobin(pool, cursor), pool[1]);
  assert.equal(pickRoundRobin(pool, cursor), pool[2]);
  // pool[3] leaves rotation: the turn wraps to the start instead of running off the end.
  const three = pool.slice(0, 3);
  assert.equal(pickRoundRobin(three, cursor), pool[0]);
  const picks = Array.from({ length: 300 }, () => pickRoundRobin(three, cursor));
  assert.deepEqual(Object.values(tally(picks)), [100, 100, 100]);
  // It comes back and gets its turn again.
  assert.deepEqual(Array.from({ length: 4 }, () => pickRoundRobin(pool, cursor)), [pool[1], pool[2], pool[3], pool[0]]);
});

test('returns undefined for no candidates', () => {
  assert.equal(pickRoundRobin([], { next: 5 }), undefined);
});

test('a reloaded instance carries on the rotation it inherits', async () => {
  const pool = backends(3);
  const first = await roundRobin.create({}, api);
  first.pick(pool, ctx);
  const second = await roundRobin.create({}, { ...api, inherited: first.handOver!() } as PluginApi);
  assert.equal(second.pick(pool, ctx), pool[1]);
});
