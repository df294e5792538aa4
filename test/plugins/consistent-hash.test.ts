import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hashString, type Candidate, type PluginApi, type RequestContext, type StrategyDefinition } from '../../src/index.js';
import consistentHashPlugin, { buildHashRing, lookupRing, lookupRingAmong, type ConsistentHashConfig } from '../../plugins/consistent-hash.js';

/** Through the contract, as the core calls it. */
const consistentHash: StrategyDefinition = consistentHashPlugin;
const api = { pluginName: 'consistent-hash' } as PluginApi;
const defaults: ConsistentHashConfig = { key: 'client-ip', replicas: 160 };
const KEYS = 10_000;

function backend(n: number, weight = 1): Candidate {
  return { url: `http://10.2.0.${n}:8080`, weight, activeConnections: 0, healthy: true };
}

function keys(): string[] {
  return Array.from({ length: KEYS }, (_, i) => `user-${i}`);
}

/** Owner URL of every key on a ring of `pool`. */
function assign(pool: readonly Candidate[], replicas = 160): string[] {
  const ring = buildHashRing(pool, replicas);
  return keys().map((k) => pool[lookupRing(ring, hashString(k))]!.url);
}

function context(clientIp: string, headers: Record<string, string | string[]> = {}): RequestContext {
  return { clientIp, headers } as unknown as RequestContext;
}

test('buildHashRing: sorted points, replicas per unit of weight', () => {
  const ring = buildHashRing([backend(1), backend(2, 2), backend(3, 0.001)], 100);
  assert.equal(ring.points.length, 100 + 200 + 1);
  for (let i = 1; i < ring.points.length; i++) assert.ok(ring.points[i - 1]! <= ring.points[i]!);
  const owned = [0, 0, 0];
  for (const o of ring.owners) owned[o]!++;
  assert.deepEqual(owned, [100, 200, 1]);
});

test('lookupRing: the first point at or after the hash, wrapping past the top', () => {
  const ring = buildHashRing([backend(1), backend(2)], 3);
  const { points, owners } = ring;
  for (let i = 0; i < points.length; i++) {
    assert.equal(lookupRing(ring, points[i]!), owners[i]);
    if (i > 0 && points[i - 1]! + 1 < points[i]!) assert.equal(lookupRing(ring, points[i - 1]! + 1), owners[i]);
  }
  assert.equal(lookupRing(ring, 0), owners[0]);
  assert.equal(lookupRing(ring, points[points.length - 1]! + 1), owners[0]);
  assert.equal(lookupRing(ring, 0xffffffff), points[points.length - 1] === 0xffffffff ? owners[points.length - 1] : owners[0]);
  assert.equal(lookupRing(buildHashRing([], 160), 12345), -1);
});

test('keys spread evenly: each of 3 backends gets 20%-47%', () => {
  const pool = [backend(1), backend(2), backend(3)];
  const counts = new Map<string, number>();
  for (const url of assign(pool)) counts.set(url, (counts.get(url) ?? 0) + 1);
  assert.equal(counts.size, 3);
  for (const [url, n] of counts) assert.ok(n >= 0.2 * KEYS && n <= 0.47 * KEYS, `${url} got ${n} of ${KEYS}`);
});

test('weights set each backend\'s share of keys', () => {
  const pool = [backend(1, 1), backend(2, 3)];
  const heavy = assign(pool).filter((url) => url === pool[1]!.url).length;
  assert.ok(heavy > 0.65 * KEYS && heavy < 0.85 * KEYS, `weight 3 of 4 got ${heavy} of ${KEYS}`);
});

test('adding a 4th backend to 3 remaps at most 1.5/4 of keys, all of them to the newcomer', () => {
  const three = [backend(1), backend(2), backend(3)];
  const four = [...three, backend(4)];
  const before = assign(three);
  const after = assign(four);
  let moved = 0;
  for (let i = 0; i < KEYS; i++) {
    if (before[i] === after[i]) continue;
    moved++;
    assert.equal(after[i], four[3]!.url, `key ${i} moved between backends that stayed`);
  }
  assert.ok(moved <= (1.5 / 4) * KEYS, `${moved} of ${KEYS} keys moved`);
  assert.ok(moved > 0, 'the newcomer got no keys');
});

test('removing a backend remaps only its own keys', async (t) => {
  const four = [backend(1), backend(2), backend(3), backend(4)];
  const before = assign(four);
  for (let gone = 0; gone < four.length; gone++) {
    await t.test(`without ${four[gone]!.url}`, () => {
      const after = assign(four.filter((_, i) => i !== gone));
      for (let i = 0; i < KEYS; i++) {
        if (before[i] === four[gone]!.url) assert.notEqual(after[i], four[gone]!.url);
        else assert.equal(after[i], before[i], `key ${i} moved off a backend that stayed`);
      }
    });
  }
});

test('the plugin hashes by the configured key, falling back to the client ip', async (t) => {
  const pool = [backend(1), backend(2), backend(3), backend(4), backend(5)];
  const ring = buildHashRing(pool, 160);
  const owner = (key: string): string => pool[lookupRing(ring, hashString(key))]!.url;
  const cases = [
    { desc: 'client-ip', key: 'client-ip', ctx: context('10.9.8.7'), want: owner('10.9.8.7') },
    { desc: 'header, any case in config', key: 'header:X-User', ctx: context('10.9.8.7', { 'x-user': 'alice' }), want: owner('alice') },
    { desc: 'repeated header: the first', key: 'header:x-user', ctx: context('10.9.8.7', { 'x-user': ['bob', 'eve'] }), want: owner('bob') },
    { desc: 'header missing → client ip', key: 'header:X-User', ctx: context('10.9.8.7'), want: owner('10.9.8.7') },
    { desc: 'header empty → client ip', key: 'header:X-User', ctx: context('10.9.8.7', { 'x-user': '' }), want: owner('10.9.8.7') },
    { desc: 'cookie', key: 'cookie:session', ctx: context('10.9.8.7', { cookie: 'theme=dark; session=s-42' }), want: owner('s-42') },
    { desc: 'cookie in a second Cookie header', key: 'cookie:session', ctx: context('10.9.8.7', { cookie: ['theme=dark', 'session=s-43'] }), want: owner('s-43') },
    { desc: 'quoted cookie: hashed without the quotes', key: 'cookie:session', ctx: context('10.9.8.7', { cookie: 'session="s-44"' }), want: owner('s-44') },
    { desc: 'empty cookie → client ip', key: 'cookie:session', ctx: context('10.9.8.7', { cookie: 'session=; theme=dark' }), want: owner('10.9.8.7') },
    { desc: 'cookie missing → client ip', key: 'cookie:session', ctx: context('10.9.8.7', { cookie: 'theme=dark' }), want: owner('10.9.8.7') },
    { desc: 'no cookie header → client ip', key: 'cookie:session', ctx: context('10.9.8.7'), want: owner('10.9.8.7') },
  ];
  for (const { desc, key, ctx, want } of cases) {
    await t.test(desc, async () => {
      const instance = await consistentHash.create({ ...defaults, key }, api);
      assert.equal(instance.pick(pool, ctx)!.url, want);
    });
  }
});

test('the plugin follows the candidate set as it changes', async () => {
  const instance = await consistentHash.create(defaults, api);
  const four = [backend(1), backend(2), backend(3), backend(4)];
  const ctxs = Array.from({ length: 500 }, (_, i) => context(`172.16.${i >> 8}.${i & 255}`));
  const onFour = ctxs.map((ctx) => instance.pick(four, ctx)!.url);
  const three = four.slice(0, 3);
  const onThree = ctxs.map((ctx) => instance.pick(three, ctx)!.url);
  assert.ok(!onThree.includes(four[3]!.url));
  // Recreated candidate objects with the same URLs and weights: same answers.
  assert.deepEqual(ctxs.map((ctx) => instance.pick(four.map((c) => ({ ...c })), ctx)!.url), onFour);
  assert.deepEqual(ctxs.map((ctx) => instance.pick(three, ctx)!.url), onThree);
});

test('returns undefined for no candidates', async () => {
  const instance = await consistentHash.create(defaults, api);
  assert.equal(instance.pick([], context('10.0.0.1')), undefined);
});

test('lookupRingAmong on the ring of all backends answers as the ring of the subset alone would, for every subset', () => {
  const all = [backend(1, 2), backend(2), backend(3, 3), backend(4), backend(5)];
  // Few points per backend, so that collisions and long runs of skipped points occur.
  const replicas = 4;
  const ring = buildHashRing(all, replicas);
  const hashes = keys().map((k) => hashString(k));
  for (let mask = 0; mask < 1 << all.length; mask++) {
    const subset = all.filter((_, i) => (mask >> i) & 1);
    const slotOf = new Int32Array(all.length).fill(-1);
    subset.forEach((c) => (slotOf[all.indexOf(c)] = subset.indexOf(c)));
    const own = buildHashRing(subset, replicas);
    for (const hash of hashes) {
      const want = lookupRing(own, hash);
      assert.equal(lookupRingAmong(ring, hash, slotOf), want, `subset ${mask.toString(2)}, hash ${hash}`);
    }
  }
});

test('a backend leaving rotation and coming back: the plugin answers as a fresh one given the same candidates', async () => {
  const instance = await consistentHash.create(defaults, api);
  const five = [backend(1), backend(2, 3), backend(3), backend(4), backend(5)];
  const ctxs = Array.from({ length: 2000 }, (_, i) => context(`172.17.${i >> 8}.${i & 255}`));
  for (const candidates of [five, five.filter((_, i) => i !== 1), five.filter((_, i) => i === 0 || i === 4), five]) {
    const fresh = await consistentHash.create(defaults, api);
    assert.deepEqual(
      ctxs.map((ctx) => instance.pick(candidates, ctx)!.url),
      ctxs.map((ctx) => fresh.pick(candidates, ctx)!.url),
      candidates.map((c) => c.url).join(' '),
    );
  }
});
