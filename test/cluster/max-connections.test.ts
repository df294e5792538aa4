/**
 * `workers = 2` with server.max_connections = 5: each worker process holds
 * at most ceil(5 / 2) = 3 client connections — a limit the workers really
 * apply, from the configuration their primary pushes, not one the primary
 * merely logs.
 *
 * Under the default scheduling (SCHED_NONE) the kernel picks the worker of
 * each connection, and a full worker refuses a connection the other could
 * have taken: only upper bounds are certain. With the primary handing
 * connections out round-robin (NODE_CLUSTER_SCHED_POLICY=rr), one at a time
 * to the next worker, exactly which are admitted is known — and that mode
 * refuses differently (traffic-server.ts), so both are tested.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startBackend, type TestBackend } from '../helpers/backends.js';
import { holdConnection, releaseAll, type HeldConnection } from '../helpers/held-connections.js';
import type { StartLbOptions } from '../helpers/lb-process.js';
import { backendList, clusterHead, primaryLines, startCluster, workerLines, type ClusterFixture } from './support.js';

type TestContext = { after(fn: () => Promise<void>): void };

async function clusterWithLimit(t: TestContext, env: StartLbOptions['env'] = {}): Promise<{ cluster: ClusterFixture; backend: TestBackend; held: HeldConnection[] }> {
  const backend = await startBackend('b1');
  const held: HeldConnection[] = [];
  t.after(async () => {
    await releaseAll(held);
    await backend.close();
  });
  const cluster = await startCluster(
    t,
    (port) => `${clusterHead(port, 'max_connections = 5')}
[pools.web]
backends = ${backendList([backend])}
`,
    {},
    env,
  );
  assert.deepEqual(
    primaryLines(cluster.lb, (l) => l.msg.startsWith('accepting')).map((l) => l.msg),
    ['accepting at most 3 client connections in each worker (server.max_connections = 5 over 2 workers)'],
    'the primary says it once for the cluster',
  );
  return { cluster, backend, held };
}

const limitWarnings = (cluster: ClusterFixture) => workerLines(cluster.lb, (l) => l.level === 40 && l.maxConnections !== undefined);

test('workers = 2, max_connections = 5, connections handed out round-robin: each worker holds 3, the cluster 6', async (t) => {
  const { cluster, held } = await clusterWithLimit(t, { NODE_CLUSTER_SCHED_POLICY: 'rr' });
  for (let i = 0; i < 8; i++) held.push(await holdConnection(cluster.port));
  assert.deepEqual(
    held.map((c) => c.status ?? 'closed unanswered'),
    [200, 200, 200, 200, 200, 200, 'closed unanswered', 'closed unanswered'],
    'the seventh and eighth are closed by the full workers, not passed around between them',
  );
  assert.deepEqual(
    (await cluster.status()).workers.map((w) => w.requests),
    [3, 3],
    'each worker served the 3 connections it admitted',
  );
  // Each full worker refused one, and said so with its own limit.
  await cluster.lb.waitForLog(() => limitWarnings(cluster).length === 2, 5000);
  assert.deepEqual(limitWarnings(cluster).map((l) => [l.worker, l.maxConnections]).sort(), [
    [1, 3],
    [2, 3],
  ]);
});

test('workers = 2, max_connections = 5, default scheduling: no worker holds more than 3, the cluster no more than 6', async (t) => {
  const { cluster, held } = await clusterWithLimit(t);
  for (let i = 0; i < 12; i++) held.push(await holdConnection(cluster.port));
  const admitted = held.filter((c) => c.status === 200).length;
  // Whichever workers the kernel picks, the first 3 fit.
  assert.ok(admitted >= 3 && admitted <= 6, `${admitted} of 12 connections admitted, 3 to 6 expected`);
  assert.equal(held.filter((c) => c.status === undefined).length, 12 - admitted, 'the others were closed unanswered');
  const perWorker = (await cluster.status()).workers.map((w) => w.requests);
  assert.equal(perWorker.reduce((a, b) => a + b, 0), admitted);
  for (const requests of perWorker) assert.ok(requests <= 3, `a worker admitted ${requests} connections: ${perWorker.join(', ')}`);
  await cluster.lb.waitForLog(() => limitWarnings(cluster).length > 0, 5000);
  for (const line of limitWarnings(cluster)) assert.equal(line.maxConnections, 3);
});
