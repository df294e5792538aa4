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
 *
 * The primary's /status and /metrics count the refused connections of every
 * worker, exactly (a worker counts one as it closes it, before the client
 * sees it closed, and the primary asks the workers before it answers), and
 * keep those of worker processes that exited.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startBackend, type TestBackend } from '../helpers/backends.js';
import { holdConnection, releaseAll, type HeldConnection } from '../helpers/held-connections.js';
import type { StartLbOptions } from '../helpers/lb-process.js';
import { readClientConnections } from '../helpers/client-connection-figures.js';
import { COUNTERS_PUSH_MS } from '../../src/cluster/messages.js';
import { backendList, clusterHead, eventually, primaryLines, settle, startCluster, workerLines, type ClusterFixture } from './support.js';

type TestContext = { after(fn: () => Promise<void>): void };

const limitedToml = (port: number, backend: TestBackend, workers = 2) => `${clusterHead(port, 'max_connections = 5').replace('workers = 2', `workers = ${workers}`)}
[pools.web]
backends = ${backendList([backend])}
`;

/** Asserts that the primary's /status and /metrics both show `open` client connections and `refused` refusals, over the workers. */
async function assertCounted(cluster: ClusterFixture, open: number, refused: number, why: string): Promise<void> {
  const read = await readClientConnections(cluster.admin);
  assert.deepEqual(read.status, { open, refused }, `/status client_connections: ${why}`);
  assert.deepEqual(read.metrics, { open, refused }, `/metrics: ${why}`);
}

const closedUnanswered = (connections: readonly HeldConnection[]) => connections.map((c) => c.status ?? 'closed unanswered');

async function clusterWithLimit(t: TestContext, env: StartLbOptions['env'] = {}): Promise<{ cluster: ClusterFixture; backend: TestBackend; held: HeldConnection[] }> {
  const backend = await startBackend('b1');
  const held: HeldConnection[] = [];
  t.after(async () => {
    await releaseAll(held);
    await backend.close();
  });
  const cluster = await startCluster(t, (port) => limitedToml(port, backend), {}, env);
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
  await assertCounted(cluster, 6, 2, 'the sum over both workers');
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
  await assertCounted(cluster, admitted, 12 - admitted, 'whichever worker refused each');
  await cluster.lb.waitForLog(() => limitWarnings(cluster).length > 0, 5000);
  for (const line of limitWarnings(cluster)) assert.equal(line.maxConnections, 3);
});

test('workers = 2, round-robin: refusals stay counted when a worker is killed and when one is retired by a save', async (t) => {
  const { cluster, backend, held } = await clusterWithLimit(t, { NODE_CLUSTER_SCHED_POLICY: 'rr' });
  // Read before any traffic: from here to the kill nothing asks the workers for their figures, so the primary has only what they pushed.
  const pids = (await cluster.status()).workers.map((w) => w.pid!);
  for (let i = 0; i < 8; i++) held.push(await holdConnection(cluster.port));
  assert.deepEqual(closedUnanswered(held), [200, 200, 200, 200, 200, 200, 'closed unanswered', 'closed unanswered']);
  // Once the pushes that carry the requests are out, a refusal (one per worker) is all that changes: it must be pushed for itself.
  await settle(2 * COUNTERS_PUSH_MS + 200);
  for (let i = 0; i < 2; i++) held.push(await holdConnection(cluster.port));
  assert.deepEqual(closedUnanswered(held.slice(8)), ['closed unanswered', 'closed unanswered']);
  await settle(2 * COUNTERS_PUSH_MS + 200);

  const from = cluster.lb.logs.length;
  process.kill(pids[0]!, 'SIGKILL');
  await cluster.lb.waitForLog((l) => /^worker 1 restarted/.test(l.msg), 10_000, from);
  await assertCounted(cluster, 3, 4, "worker 1's connections went with it; its two refusals are kept");

  // Fewer workers: worker 2 closes its idle connections, sends its last figures, and exits.
  await cluster.save(limitedToml(cluster.port, backend, 1));
  await eventually('worker 2 retired', 10_000, async () => ((await cluster.status()).workers.length === 1 ? true : undefined));
  await assertCounted(cluster, 0, 4, "worker 2's refusals are kept after it is retired");
});
