/**
 * `workers = 2`: two worker processes serve the one listener; the primary
 * sums their counters in /status and /metrics, probes each backend once per
 * interval however many workers there are, and turns one worker's passive
 * verdict into the whole cluster's. Real CLI (primary + workers in their
 * own process group), real backends.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, startBackend, startBackends, type TestBackend } from '../helpers/backends.js';
import { request } from '../helpers/http-client.js';
import { parsePrometheusText } from '../admin/prometheus-text.js';
import { startRedis } from '../helpers/redis.js';
import { COUNTERS_PUSH_MS } from '../../src/cluster/messages.js';
import { alive, backendList, clusterHead, eventually, primaryLines, settle, spread, startCluster, workerLines } from './support.js';

async function backendsFor(t: { after(fn: () => Promise<void>): void }, count: number): Promise<TestBackend[]> {
  const backends = await startBackends(count);
  t.after(() => Promise.all(backends.map((b) => b.close())).then(() => {}));
  return backends;
}

test('workers = 2: two processes serve, and /status and /metrics sum what both counted', async (t) => {
  const backends = await backendsFor(t, 2);
  const cluster = await startCluster(t, (port) => `${clusterHead(port)}
[pools.web]
backends = ${backendList(backends)}
`);
  const before = await cluster.status();
  assert.equal(before.workers.length, 2);
  const pids = before.workers.map((w) => w.pid);
  assert.equal(new Set(pids).size, 2, `distinct worker pids: ${pids.join(', ')}`);
  for (const w of before.workers) {
    assert.equal(w.state, 'serving');
    assert.equal(w.generation, 1);
    assert.notEqual(w.pid, cluster.lb.child.pid, 'the primary serves no traffic');
    assert.ok(alive(w.pid!), `worker ${w.id} (pid ${w.pid}) runs`);
  }

  const responses = await spread(`http://127.0.0.1:${cluster.port}/`, 200, 4);
  assert.deepEqual(
    responses.filter((r) => r.status !== 200).map((r) => `${r.status} ${r.body}`),
    [],
  );

  const after = await cluster.status();
  const perWorker = after.workers.map((w) => w.requests);
  for (const w of after.workers) {
    assert.ok(w.requests > 0, `worker ${w.id} served requests (per worker: ${perWorker.join(', ')})`);
    assert.equal(w.answered, true);
  }
  assert.equal(perWorker.reduce((a, b) => a + b, 0), 200);
  assert.equal(after.pools.web!.backends.reduce((sum, b) => sum + b.requests, 0), 200);

  const metrics = await request(`${cluster.admin}/metrics`);
  assert.equal(metrics.status, 200);
  const families = parsePrometheusText(metrics.body);
  const requests = families.get('switchyard_requests_total');
  assert.ok(requests, 'switchyard_requests_total is exposed');
  const ok = requests.samples.filter((s) => s.labels.class === '2xx').reduce((sum, s) => sum + s.value, 0);
  assert.equal(ok, 200, 'the primary sums both workers\' 2xx counters');
  const serving = families.get('switchyard_workers')?.samples.find((s) => s.labels.state === 'serving');
  assert.equal(serving?.value, 2);

  // Every line a worker writes says which worker it is.
  const fromWorkers = workerLines(cluster.lb, () => true);
  for (const line of fromWorkers) assert.ok(line.worker === 1 || line.worker === 2, `worker line without its id: ${JSON.stringify(line)}`);
});

test('health probes per backend per interval stay at one with 2 workers', async (t) => {
  const probes = new Map<string, number>();
  const backends: TestBackend[] = [];
  for (const name of ['h1', 'h2']) {
    const backend = await startBackend(name, (req, res) => {
      if (req.url === '/healthz') probes.set(name, (probes.get(name) ?? 0) + 1);
      res.end(name);
    });
    backends.push(backend);
  }
  t.after(() => Promise.all(backends.map((b) => b.close())).then(() => {}));
  const intervalMs = 200;
  const cluster = await startCluster(t, (port) => `${clusterHead(port)}
[pools.web]
backends = ${backendList(backends)}
health = { checker = "http", path = "/healthz", interval = "${intervalMs}ms", timeout = "150ms" }
`);
  await eventually('both backends up', 3000, async () => {
    const s = await cluster.status();
    return s.pools.web!.backends.every((b) => b.state === 'up') ? true : undefined;
  });
  const windowMs = 2000;
  const start = new Map(probes);
  await new Promise((resolve) => setTimeout(resolve, windowMs));
  const expected = windowMs / intervalMs;
  for (const b of backends) {
    const hits = (probes.get(b.name) ?? 0) - (start.get(b.name) ?? 0);
    // One prober: ~10 in the window (± jitter and the window's edges); one per worker would be ~20.
    assert.ok(hits >= expected - 3 && hits <= expected + 2, `${b.name}: ${hits} probes in ${windowMs}ms at ${intervalMs}ms intervals (expected ~${expected})`);
  }
});

test("one worker's passive verdict takes the backend out of every worker; the primary brings it back after the cooldown", async (t) => {
  const backends = await backendsFor(t, 1);
  const deadUrl = `http://127.0.0.1:${await freePort()}`;
  const cluster = await startCluster(t, (port) => `${clusterHead(port)}
[pools.web]
backends = [{ url = "${backends[0]!.url}" }, { url = "${deadUrl}" }]
passive_failures = 1
passive_cooldown = "4s"
`);
  // The cooldown is long enough that the 40 requests end before it does, even on a loaded machine (they took 1.7 s on one).
  const responses = await spread(`http://127.0.0.1:${cluster.port}/`, 40, 1);
  const failed = responses.filter((r) => r.status !== 200);
  // At most the first request of each worker to the dead backend, before the primary's word reached it.
  assert.ok(failed.length >= 1 && failed.length <= 2, `${failed.length} failed: ${failed.map((r) => r.status).join(', ')}`);
  assert.ok(responses.slice(-20).every((r) => r.status === 200), 'once taken out, no worker sends to it');
  const down = await cluster.status();
  assert.equal(down.pools.web!.backends.find((b) => b.url === deadUrl)?.state, 'down');
  assert.equal(primaryLines(cluster.lb, (l) => l.backend === deadUrl && l.to === 'down').length, 1, 'the primary logs the change once');

  await eventually('back in rotation after the cooldown', 8000, async () => {
    const s = await cluster.status();
    return s.pools.web!.backends.find((b) => b.url === deadUrl)?.state === 'unknown' ? true : undefined;
  });
});

test('counters of workers killed with SIGKILL are kept up to their last push: /status and /metrics count every request after the restarts', async (t) => {
  const backends = await backendsFor(t, 1);
  const cluster = await startCluster(t, (port) => `${clusterHead(port)}
[pools.web]
backends = ${backendList(backends)}
`);
  // Read before any traffic: after it, nothing may ask the workers for their counters before they are killed.
  const pids = (await cluster.status()).workers.map((w) => w.pid!);
  const responses = await spread(`http://127.0.0.1:${cluster.port}/`, 200, 4);
  assert.ok(responses.every((r) => r.status === 200));
  // What a push carries cannot be seen from outside without asking for the counters (which would hide a loss): wait two push intervals.
  await settle(2 * COUNTERS_PUSH_MS + 200);

  const from = cluster.lb.logs.length;
  for (const pid of pids) process.kill(pid, 'SIGKILL');
  await cluster.lb.waitForLog((l) => /^worker 1 restarted/.test(l.msg), 10_000, from);
  await cluster.lb.waitForLog((l) => /^worker 2 restarted/.test(l.msg), 10_000, from);

  const status = await cluster.status();
  assert.equal(status.pools.web!.backends[0]!.requests, 200, 'nothing the killed workers counted was lost');
  assert.deepEqual(status.workers.map((w) => w.requests), [0, 0], 'the new processes have counted nothing yet');
  const families = parsePrometheusText((await request(`${cluster.admin}/metrics`)).body);
  const ok = families.get('switchyard_requests_total')!.samples.filter((s) => s.labels.class === '2xx').reduce((sum, s) => sum + s.value, 0);
  assert.equal(ok, 200);
});

test('with workers = 2 the primary creates no middleware: a Redis outage is logged once by each worker and never by the primary', async (t) => {
  const backends = await backendsFor(t, 1);
  const redis = await startRedis();
  t.after(() => redis.kill());
  const cluster = await startCluster(t, (port) => `${clusterHead(port)}
[[pipeline]]
plugin = "rate-limit"
rate = 1000
burst = 1000
store = "redis"
redis_url = "${redis.url}"
redis_timeout = "200ms"

[pools.web]
backends = ${backendList(backends)}
`);
  const url = `http://127.0.0.1:${cluster.port}/`;
  const before = await spread(url, 20, 4);
  assert.ok(before.every((r) => r.status === 200));

  const UNAVAILABLE = /^rate-limit: Redis at .* is unavailable/;
  const from = cluster.lb.logs.length;
  await redis.kill();
  await eventually('both workers saw the outage', 10_000, async () => {
    // Traffic on fresh connections reaches both workers; each fails open.
    const during = await spread(url, 10, 2);
    assert.ok(during.every((r) => r.status === 200), 'redis_failure = "open" lets requests through');
    const workers = new Set(workerLines(cluster.lb, (l) => UNAVAILABLE.test(l.msg)).map((l) => l.worker));
    return workers.size === 2 ? true : undefined;
  });
  await settle(300);
  const outage = cluster.lb.logs.slice(from).filter((l) => UNAVAILABLE.test(l.msg));
  assert.deepEqual(outage.map((l) => l.worker).sort(), [1, 2], `once per worker: ${outage.map((l) => JSON.stringify(l)).join('\n')}`);
  assert.deepEqual(primaryLines(cluster.lb, (l) => /Redis/.test(l.msg)), [], 'the primary holds no Redis connection');
});

test('a response that ends after the last push is pushed too: a worker killed later has lost nothing', async (t) => {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const backend = await startBackend('held', (_req, res) => void released.then(() => res.end('late')));
  t.after(() => backend.close());
  const cluster = await startCluster(t, (port) => `${clusterHead(port)}
[pools.web]
backends = ${backendList([backend])}
`);
  const pids = (await cluster.status()).workers.map((w) => w.pid!);
  const answer = request(`http://127.0.0.1:${cluster.port}/`);
  // The request is counted as it starts, and pushed; its response is counted only as it ends, with no request after it.
  await settle(2 * COUNTERS_PUSH_MS + 200);
  release();
  assert.equal((await answer).status, 200);
  await settle(2 * COUNTERS_PUSH_MS + 200);

  const from = cluster.lb.logs.length;
  for (const pid of pids) process.kill(pid, 'SIGKILL');
  await cluster.lb.waitForLog((l) => /^worker 1 restarted/.test(l.msg), 10_000, from);
  await cluster.lb.waitForLog((l) => /^worker 2 restarted/.test(l.msg), 10_000, from);
  const families = parsePrometheusText((await request(`${cluster.admin}/metrics`)).body);
  const ok = families.get('switchyard_requests_total')!.samples.filter((s) => s.labels.class === '2xx').reduce((sum, s) => sum + s.value, 0);
  assert.equal(ok, 1, 'the 200 that ended after the last request was pushed before the kill');
});
