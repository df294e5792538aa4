/** Every built-in strategy end to end: real backends, real proxy, real sockets. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startSwitchyard } from '../../src/testing.js';
import { startBackends, type TestBackend } from '../helpers/backends.js';
import { countBodies, request } from '../helpers/http-client.js';

function poolToml(backends: TestBackend[], strategy: string, weights?: number[], extra = ''): string {
  const list = backends
    .map((b, i) => `{ url = "${b.url}"${weights ? `, weight = ${weights[i]}` : ''} }`)
    .join(', ');
  return `[server]\nlisten = "127.0.0.1:0"\n${extra}\n[pools.web]\nstrategy = ${strategy}\nbackends = [${list}]\n`;
}

async function withProxy(
  backendCount: number,
  toml: (b: TestBackend[]) => string,
  body: (url: string, backends: TestBackend[]) => Promise<void>,
): Promise<void> {
  const backends = await startBackends(backendCount);
  try {
    const lb = await startSwitchyard({ toml: toml(backends) });
    try {
      await body(lb.url, backends);
    } finally {
      await lb.close();
    }
  } finally {
    await Promise.all(backends.map((b) => b.close()));
  }
}

test('round-robin: 300 requests over 3 backends → 100 each', async () => {
  await withProxy(3, (b) => poolToml(b, '"round-robin"'), async (url) => {
    assert.deepEqual(await countBodies(url, 300), { b1: 100, b2: 100, b3: 100 });
  });
});

test('weighted-round-robin: weights 1:2:3 over 600 → 100/200/300 (±5%)', async () => {
  await withProxy(3, (b) => poolToml(b, '"weighted-round-robin"', [1, 2, 3]), async (url) => {
    const counts = await countBodies(url, 600);
    for (const [name, expected] of [['b1', 100], ['b2', 200], ['b3', 300]] as const) {
      assert.ok(Math.abs(counts[name]! - expected) <= expected * 0.05, `${name}: ${counts[name]} not within 5% of ${expected}`);
    }
  });
});

test('least-connections sends clearly more to a fast backend than to a slow one under concurrency', async () => {
  await withProxy(
    2,
    (b) => {
      // b1 answers at once, b2 takes 50 ms.
      b[1]!.handler = (_req, res) => void setTimeout(() => res.end('b2'), 50);
      return poolToml(b, '"least-connections"');
    },
    async (url) => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
      const counts: Record<string, number> = {};
      try {
        await Promise.all(
          Array.from({ length: 8 }, async () => {
            for (let i = 0; i < 25; i++) {
              const res = await request(url, { agent });
              counts[res.body] = (counts[res.body] ?? 0) + 1;
            }
          }),
        );
      } finally {
        agent.destroy();
      }
      assert.ok((counts.b1 ?? 0) > 3 * (counts.b2 ?? 0), `fast ${counts.b1} vs slow ${counts.b2}`);
    },
  );
});

test('ip-hash pins one client to one backend, and spreads clients named by a trusted proxy', async () => {
  await withProxy(
    3,
    (b) => poolToml(b, '"ip-hash"', undefined, 'trusted_proxies = ["127.0.0.1/32"]'),
    async (url) => {
      const same = await countBodies(url, 30);
      assert.equal(Object.keys(same).length, 1, `one client went to ${JSON.stringify(same)}`);
      const seen = new Set<string>();
      for (let i = 1; i <= 60; i++) {
        const ip = `127.0.${i}.${i}`;
        const first = await request(url, { headers: { 'x-forwarded-for': ip } });
        const again = await request(url, { headers: { 'x-forwarded-for': ip } });
        assert.equal(first.body, again.body, `client ${ip} moved`);
        seen.add(first.body);
      }
      assert.equal(seen.size, 3, 'clients spread over all backends');
    },
  );
});

test('consistent-hash keyed by a header keeps each key on one backend and uses every backend', async () => {
  await withProxy(
    3,
    (b) => poolToml(b, '{ plugin = "consistent-hash", key = "header:X-User" }'),
    async (url) => {
      const seen = new Set<string>();
      for (let i = 0; i < 60; i++) {
        const headers = { 'x-user': `user-${i}` };
        const a = await request(url, { headers });
        const b = await request(url, { headers });
        assert.equal(a.body, b.body);
        seen.add(a.body);
      }
      assert.equal(seen.size, 3);
    },
  );
});

test('p2c serves from every backend', async () => {
  await withProxy(3, (b) => poolToml(b, '"p2c"'), async (url) => {
    const counts = await countBodies(url, 150);
    assert.equal(Object.keys(counts).length, 3, JSON.stringify(counts));
  });
});
