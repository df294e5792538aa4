/**
 * weighted-random's own test: the pure pick function table-driven, then the
 * plugin on real traffic through `switchyard/testing`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { Candidate } from 'switchyard';
import { startBackends, startSwitchyard } from 'switchyard/testing';
import { pickWeightedRandom, seededRandom } from './index.js';

const PLUGIN = fileURLToPath(new URL('./index.js', import.meta.url));

const candidate = (url: string, weight: number): Candidate => ({ url, weight, activeConnections: 0, healthy: true });

test('pickWeightedRandom maps the random number onto weight-wide slices', () => {
  const list = [candidate('a', 1), candidate('b', 3)];
  const rows: { desc: string; random: number; expect: string | undefined; candidates?: Candidate[] }[] = [
    { desc: 'start of the first slice', random: 0, expect: 'a' },
    { desc: 'end of the first slice', random: 0.2499, expect: 'a' },
    { desc: 'start of the second slice', random: 0.25, expect: 'b' },
    { desc: 'end of everything', random: 0.9999, expect: 'b' },
    { desc: 'one candidate', random: 0.7, expect: 'x', candidates: [candidate('x', 5)] },
    { desc: 'none', random: 0.7, expect: undefined, candidates: [] },
  ];
  for (const { desc, random, expect, candidates } of rows) {
    assert.equal(pickWeightedRandom(candidates ?? list, () => random)?.url, expect, desc);
  }
});

test('the same seed gives the same sequence', () => {
  const a = seededRandom(7);
  const b = seededRandom(7);
  for (let i = 0; i < 5; i++) assert.equal(a(), b());
});

test('on real traffic, backends get shares close to their weights', async (t) => {
  const backends = await startBackends(2);
  const lb = await startSwitchyard({
    toml: `
      [server]
      listen = "127.0.0.1:0"
      [pools.web]
      strategy = { plugin = "${PLUGIN}", seed = 42 }
      backends = [{ url = "${backends[0]!.url}", weight = 1 }, { url = "${backends[1]!.url}", weight = 3 }]
    `,
  });
  t.after(async () => {
    await lb.close();
    await Promise.all(backends.map((b) => b.close()));
  });
  const counts: Record<string, number> = {};
  for (let i = 0; i < 400; i++) {
    const body = await (await fetch(lb.url)).text();
    counts[body] = (counts[body] ?? 0) + 1;
  }
  assert.ok(Math.abs(counts.b1! - 100) <= 30 && Math.abs(counts.b2! - 300) <= 30, JSON.stringify(counts));
});
