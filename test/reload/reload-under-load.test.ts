/**
 * Reloads under load drop nothing: 8 client loops (half on keep-alive
 * connections, half opening a connection per request) run through 5 reloads
 * of a real `lb run` that alternate backend sets and weights. Every request
 * must get a 2xx and no client may see a connection error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBackend, type TestBackend } from '../helpers/backends.js';
import { request } from '../helpers/http-client.js';
import { startLb, type LbProcess } from '../helpers/lb-process.js';

function weightedToml(members: readonly [TestBackend, number][]): string {
  return `[server]
listen = "127.0.0.1:0"

[pools.web]
strategy = "weighted-round-robin"
backends = [${members.map(([b, w]) => `{ url = "${b.url}", weight = ${w} }`).join(', ')}]
`;
}

test('8 client loops through 5 reloads alternating backend sets and weights: zero non-2xx, zero connection errors', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'lb-load-'));
  // A little latency so requests are in flight at every swap.
  const slowish: http.RequestListener = (_req, res) => void setTimeout(() => res.end('ok'), 2);
  const backends: TestBackend[] = [];
  for (const name of ['a1', 'a2', 'b1', 'b2']) backends.push(await startBackend(name, slowish));
  const [a1, a2, b1, b2] = backends as [TestBackend, TestBackend, TestBackend, TestBackend];
  const file = join(dir, 'lb.toml');
  const sets: [TestBackend, number][][] = [
    [[a1, 1], [a2, 3]],
    [[b1, 2], [b2, 1]],
    [[a1, 1], [b1, 1]], // one survivor, one new
    [[a2, 5], [b2, 1]],
    [[b1, 1], [b2, 4]],
    [[a1, 3], [a2, 1], [b1, 1], [b2, 1]],
  ];
  await writeFile(file, weightedToml(sets[0]!));
  let lb: LbProcess | undefined;
  const agents = Array.from({ length: 4 }, () => new http.Agent({ keepAlive: true, maxSockets: 1 }));
  let running = true;
  t.after(async () => {
    running = false;
    for (const agent of agents) agent.destroy();
    await lb?.stop();
    await Promise.all(backends.map((b) => b.close()));
    await rm(dir, { recursive: true, force: true });
  });
  lb = await startLb(file);

  const statuses = new Map<number, number>();
  const errors: string[] = [];
  let total = 0;
  const loop = async (agent: http.Agent | false) => {
    while (running) {
      try {
        const res = await request(lb!.url, { agent, timeoutMs: 5000 });
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (res.status < 200 || res.status > 299) errors.push(`${res.status} ${res.body.trim()}`);
      } catch (err) {
        errors.push(`${(err as NodeJS.ErrnoException).code ?? ''} ${(err as Error).message}`);
      }
      total++;
    }
  };
  const loops = [...agents.map((agent) => loop(agent)), ...Array.from({ length: 4 }, () => loop(false))];

  await new Promise((resolve) => setTimeout(resolve, 300));
  const perReload: number[] = [];
  for (let i = 1; i <= 5; i++) {
    const before = total;
    await writeFile(file, weightedToml(sets[i]!));
    await lb.waitForLog((l) => l.generation === i + 1 && /is live/.test(l.msg), 5000);
    // Let traffic run on the new generation, and the old one drain, before the next save.
    const deadline = Date.now() + 2000;
    while (total < before + 200 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    perReload.push(total - before);
  }
  running = false;
  await Promise.all(loops);

  t.diagnostic(`${total} requests, statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
  assert.deepEqual(errors.slice(0, 10), [], `${errors.length} failed requests`);
  // Traffic ran across every swap (not a fixed total: a loaded machine runs fewer in the 2 s each gets).
  assert.ok(Math.min(...perReload) >= 50, `requests per reload: ${perReload.join(', ')}`);
  assert.equal(lb.logs.filter((l) => /is live/.test(l.msg)).length, 5, 'five reloads, five log lines');
  assert.equal(lb.logs.filter((l) => l.level >= 50).length, 0, 'no errors logged');

  // The last set, with its weights 3:1:1:1, is what serves now.
  const hitsBefore = backends.map((b) => b.hits);
  for (let i = 0; i < 60; i++) assert.equal((await request(lb.url)).status, 200);
  const share = backends.map((b, i) => b.hits - hitsBefore[i]!);
  // Smooth weighted round robin carries its state over the reload, so a window may start mid-cycle.
  [30, 10, 10, 10].forEach((expected, i) => assert.ok(Math.abs(share[i]! - expected) <= 2, `shares ${share.join(':')} should be ~3:1:1:1`));
});
