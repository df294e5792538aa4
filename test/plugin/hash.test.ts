import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fnv1a32, hashString, mix32 } from '../../src/index.js';

test('fnv1a32 matches the published FNV-1a 32-bit vectors', async (t) => {
  const vectors = [
    { input: '', want: 0x811c9dc5 },
    { input: 'a', want: 0xe40c292c },
    { input: 'foobar', want: 0xbf9cf968 },
  ];
  for (const { input, want } of vectors) {
    await t.test(JSON.stringify(input), () => assert.equal(fnv1a32(input), want));
  }
});

/*
 * Pinned: ip-hash and consistent-hash place keys with these, and instances
 * that share no state must agree, so any change here moves every client.
 * Values taken from the plugins' own copies before they were merged.
 */
test('hashString is mix32(fnv1a32(text)), pinned', async (t) => {
  const vectors = [
    { input: '', want: 0xab3e7c0b },
    { input: 'a', want: 0x1a80b1b3 },
    { input: 'foobar', want: 0x0c0da6dc },
    { input: '10.0.0.1', want: 0xaebc85ae },
    { input: '10.0.0.2', want: 0x490d9aa5 },
    { input: 'http://10.2.0.1:8080#0', want: 0x8947455f },
    { input: 'user-42', want: 0x7c2a1196 },
  ];
  for (const { input, want } of vectors) {
    await t.test(JSON.stringify(input), () => {
      assert.equal(hashString(input), want);
      assert.equal(mix32(fnv1a32(input)), want);
    });
  }
});

test('mix32: unsigned, 0 stays 0, and one flipped input bit flips about half the output', () => {
  assert.equal(mix32(0), 0);
  assert.ok(mix32(0xffffffff) >= 0);
  assert.ok(mix32(-1) === mix32(0xffffffff), 'a signed int32 input is the same 32 bits');
  let flipped = 0;
  const rounds = 1000;
  for (let i = 0; i < rounds; i++) {
    const x = fnv1a32(`k${i}`);
    let d = (mix32(x) ^ mix32(x ^ 1)) >>> 0;
    while (d !== 0) {
      flipped += d & 1;
      d >>>= 1;
    }
  }
  const mean = flipped / rounds;
  assert.ok(mean > 14 && mean < 18, `mean flipped bits ${mean}, want about 16`);
});

test('hashString spreads near-identical strings evenly over 16 buckets', () => {
  const buckets = new Array<number>(16).fill(0);
  const n = 16_000;
  for (let i = 0; i < n; i++) buckets[hashString(`10.0.${i >> 8}.${i & 255}`) >>> 28]!++;
  for (const count of buckets) assert.ok(count > 850 && count < 1150, `bucket holds ${count}, want about 1000`);
});
