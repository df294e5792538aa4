import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fnv1a32, type Candidate, type PluginApi, type RequestContext, type StrategyDefinition } from '../../src/index.js';
import ipHashPlugin, { hashUrls, pickRendezvous } from '../../plugins/ip-hash.js';

/** Through the contract, as the core calls it. */
const ipHash: StrategyDefinition = ipHashPlugin;
const api = { pluginName: 'ip-hash' } as PluginApi;

function backend(n: number, weight = 1): Candidate {
  return { url: `http://10.1.0.${n}:8080`, weight, activeConnections: 0, healthy: true };
}

function clientIps(count: number): string[] {
  const ips: string[] = [];
  for (let i = 0; i < count; i++) ips.push(`192.168.${i >> 8}.${i & 255}`);
  return ips;
}

function pick(pool: readonly Candidate[], ip: string): string {
  return pickRendezvous(pool, fnv1a32(ip), hashUrls(pool))!.url;
}

test('the same ip always reaches the same backend, through the plugin too', async () => {
  const pool = [backend(1), backend(2), backend(3)];
  const instance = await ipHash.create({}, api);
  for (const ip of clientIps(200)) {
    const ctx = { clientIp: ip, headers: {} } as unknown as RequestContext;
    const first = instance.pick(pool, ctx);
    assert.equal(instance.pick(pool, ctx), first);
    // A new array with recreated objects (a reload) maps the same way.
    assert.equal(instance.pick(pool.map((c) => ({ ...c })), ctx)!.url, first!.url);
    assert.equal(pick(pool, ip), first!.url);
  }
});

test('different ips spread over all backends', () => {
  const pool = [backend(1), backend(2), backend(3), backend(4)];
  const counts = new Map<string, number>();
  for (const ip of clientIps(4000)) counts.set(pick(pool, ip), (counts.get(pick(pool, ip)) ?? 0) + 1);
  assert.equal(counts.size, 4);
  for (const [url, n] of counts) assert.ok(n > 800 && n < 1200, `${url} got ${n} of 4000`);
});

test('removing a backend remaps only the clients that were on it; adding one takes only its share', () => {
  const four = [backend(1), backend(2), backend(3), backend(4)];
  const three = [four[0]!, four[1]!, four[3]!];
  let moved = 0;
  let taken = 0;
  for (const ip of clientIps(4000)) {
    const before = pick(four, ip);
    const after = pick(three, ip);
    if (before !== four[2]!.url) assert.equal(after, before, `${ip} moved off a backend that stayed`);
    else moved++;
    // The reverse: backend 3 joining takes clients only for itself.
    if (after !== before) {
      assert.equal(before, four[2]!.url);
      taken++;
    }
  }
  assert.equal(moved, taken);
  assert.ok(moved > 800 && moved < 1200, `${moved} of 4000 were on the removed backend`);
});

test('weights set each backend\'s share of clients', () => {
  const pool = [backend(1, 1), backend(2, 3)];
  let heavy = 0;
  for (const ip of clientIps(8000)) if (pick(pool, ip) === pool[1]!.url) heavy++;
  assert.ok(heavy > 5700 && heavy < 6300, `weight 3 of 4 got ${heavy} of 8000`);
});

test('returns undefined for no candidates', async () => {
  assert.equal(pickRendezvous([], fnv1a32('10.0.0.1'), new Uint32Array(0)), undefined);
  const instance = await ipHash.create({}, api);
  assert.equal(instance.pick([], { clientIp: '10.0.0.1', headers: {} } as unknown as RequestContext), undefined);
});
