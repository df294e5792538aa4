/**
 * With `workers = 2` a reload is applied on every process or on none: each
 * worker prepares it (builds its generation, binds a changed listener), and
 * only when all have does any of them serve it. A save some worker cannot
 * take — a busy address, a plugin that fails in one worker, a worker that
 * dies while preparing — changes nothing anywhere, is logged once, and a
 * worker restarted later starts from the configuration in service. Real CLI,
 * real backends; the plugins are files next to lb.toml that tell the workers
 * apart by their slot id.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { freePort, startBackends, type TestBackend } from '../helpers/backends.js';
import { WORKER_ENV } from '../../src/cluster/messages.js';
import { backendList, clusterHead, eventually, primaryLines, settle, spread, startCluster, workerLines, type ClusterFixture } from './support.js';

const NOT_APPLIED = /^configuration not applied/;
const LIVE = /^configuration generation (\d+) is live/;

function toml(port: number, backends: readonly TestBackend[], pipeline = ''): string {
  return `${clusterHead(port)}
${pipeline}
[pools.web]
backends = ${backendList(backends)}
`;
}

async function backendsFor(t: { after(fn: () => Promise<void>): void }, count: number): Promise<TestBackend[]> {
  const backends = await startBackends(count);
  t.after(() => Promise.all(backends.map((b) => b.close())).then(() => {}));
  return backends;
}

/** A middleware file next to lb.toml whose create() runs `inWorker2` in worker 2 and succeeds elsewhere. */
async function pluginFile(cluster: ClusterFixture, name: string, inWorker2: string): Promise<void> {
  await writeFile(
    join(cluster.dir, name),
    `export default {
  name: '${name}',
  kind: 'middleware',
  create(_config, api) {
    if (process.env.${WORKER_ENV.id} === '2') {
      ${inWorker2}
    }
    return { handle: (_ctx, next) => next() };
  },
};
`,
  );
}

/** Listens on `port` and lets go again; rejects while the port is taken. */
async function canBind(port: number): Promise<true> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return true;
}

/** Every answer of `count` fresh connections comes from `name` (so both workers serve what it names). */
async function servedOnlyBy(url: string, name: string, count = 40): Promise<void> {
  const answers = await spread(url, count, 4);
  assert.deepEqual([...new Set(answers.map((r) => `${r.status} ${r.body}`))], [`200 ${name}`]);
}

test('a save moving server.listen to a busy address is refused once, changes nothing anywhere, and a worker restarted later serves the running configuration', async (t) => {
  const [b1, b2] = (await backendsFor(t, 2)) as [TestBackend, TestBackend];
  const cluster = await startCluster(t, (port) => toml(port, [b1]));
  const url = `http://127.0.0.1:${cluster.port}/`;
  const blocker = net.createServer();
  const busy = await freePort();
  await new Promise<void>((resolve) => blocker.listen(busy, '127.0.0.1', () => resolve()));
  t.after(() => new Promise<void>((resolve) => blocker.close(() => resolve())));

  const from = cluster.lb.logs.length;
  await cluster.save(toml(busy, [b2]));
  const refused = await cluster.lb.waitForLog((l) => NOT_APPLIED.test(l.msg), 5000, from);
  assert.equal(refused.pid, cluster.lb.child.pid, 'logged by the primary');
  assert.match(refused.msg, new RegExp(`^configuration not applied, still serving generation 1:\\ncannot listen on 127\\.0\\.0\\.1:${busy}: .*EADDRINUSE`));

  const status = await cluster.status();
  assert.equal(status.generation, 1, 'the primary stays on generation 1');
  assert.deepEqual([status.reloads.applied, status.reloads.refused], [0, 1], 'counted as refused, not applied');
  assert.deepEqual(status.pools.web!.backends.map((b) => b.url), [b1.url], '/status shows the configuration in service');
  assert.deepEqual(status.workers.map((w) => w.generation), [1, 1]);
  await servedOnlyBy(url, 'b1');
  await settle(300);
  assert.equal(cluster.lb.logs.slice(from).filter((l) => NOT_APPLIED.test(l.msg)).length, 1, 'logged once for the cluster');
  assert.deepEqual(workerLines(cluster.lb, (l) => l.level >= 40), [], 'no worker logged it');

  const restartFrom = cluster.lb.logs.length;
  process.kill(status.workers[0]!.pid!, 'SIGKILL');
  const restarted = await cluster.lb.waitForLog((l) => /^worker 1 restarted/.test(l.msg), 10_000, restartFrom);
  assert.equal(restarted.generation, 1, 'the restarted worker starts from the configuration in service');
  assert.deepEqual(
    cluster.lb.logs.slice(restartFrom).filter((l) => /could not start/.test(l.msg)).map((l) => l.msg),
    [],
  );
  await servedOnlyBy(url, 'b1');
});

test('a save one worker cannot prepare is undone in the other: it keeps serving the old configuration on the old address and lets the new one go', async (t) => {
  const [b1, b2] = (await backendsFor(t, 2)) as [TestBackend, TestBackend];
  const cluster = await startCluster(t, (port) => toml(port, [b1]));
  const url = `http://127.0.0.1:${cluster.port}/`;
  await pluginFile(cluster, 'refuses.mjs', `throw new Error('not in worker 2');`);
  const moved = await freePort();

  const from = cluster.lb.logs.length;
  await cluster.save(toml(moved, [b2], '[[pipeline]]\nplugin = "./refuses.mjs"\n'));
  const refused = await cluster.lb.waitForLog((l) => NOT_APPLIED.test(l.msg), 5000, from);
  assert.equal(refused.pid, cluster.lb.child.pid);
  assert.match(refused.msg, /\nworker 2: .*lb\.toml:\d+:\d+ pipeline\[0\]\.plugin: plugin "\.\/refuses\.mjs" failed to start: not in worker 2$/);

  const status = await cluster.status();
  assert.equal(status.generation, 1);
  assert.deepEqual(status.workers.map((w) => w.generation), [1, 1], 'worker 1 went back to (never left) generation 1');
  assert.deepEqual(status.pools.web!.backends.map((b) => b.url), [b1.url]);
  await servedOnlyBy(url, 'b1');
  // Worker 1 had bound it while preparing; undone, it lets it go.
  await eventually(`port ${moved} free again`, 3000, () => canBind(moved));
  await settle(300);
  const refusals = primaryLines(cluster.lb, (l) => NOT_APPLIED.test(l.msg));
  assert.equal(refusals.length, 1, `logged once: ${JSON.stringify(refusals)}`);
  assert.deepEqual(workerLines(cluster.lb, (l) => l.level >= 40).map((l) => l.msg), []);
});

test('a worker that dies while preparing a reload: refused everywhere, its restart serves the running configuration, and a save made meanwhile then applies on both', async (t) => {
  const [b1, b2, b3] = (await backendsFor(t, 3)) as [TestBackend, TestBackend, TestBackend];
  const cluster = await startCluster(t, (port) => toml(port, [b1]));
  const url = `http://127.0.0.1:${cluster.port}/`;
  await pluginFile(cluster, 'hangs.mjs', `api.logger.info('hangs.mjs: create() in worker 2 never finishes'); return new Promise(() => {});`);

  const from = cluster.lb.logs.length;
  await cluster.save(toml(cluster.port, [b2], '[[pipeline]]\nplugin = "./hangs.mjs"\n'));
  const hanging = await cluster.lb.waitForLog((l) => /^hangs\.mjs: create\(\) in worker 2/.test(l.msg), 5000, from);
  assert.equal(hanging.worker, 2);
  // A second save while the first is being decided: it waits its turn.
  await cluster.save(toml(cluster.port, [b3]));
  process.kill(Number(hanging.pid), 'SIGKILL');

  const refused = await cluster.lb.waitForLog((l) => NOT_APPLIED.test(l.msg), 5000, from);
  assert.match(refused.msg, /^configuration not applied, still serving generation 1:\nworker 2: its process exited \(SIGKILL\) before it answered\n/);
  const live = await cluster.lb.waitForLog((l) => LIVE.test(l.msg), 10_000, from);
  assert.equal(live.generation, 2, 'the refused reload used no generation number');
  assert.ok(cluster.lb.logs.indexOf(refused) < cluster.lb.logs.indexOf(live), 'the second save was applied after the first was decided');

  const status = await eventually('both workers serving generation 2', 10_000, async () => {
    const s = await cluster.status();
    return s.workers.every((w) => w.state === 'serving' && w.generation === 2) ? s : undefined;
  });
  assert.equal(status.generation, 2);
  assert.equal(status.workers.find((w) => w.id === 2)!.restarts, 1);
  assert.deepEqual(status.pools.web!.backends.map((b) => b.url), [b3.url]);
  await servedOnlyBy(url, 'b3');
  assert.equal(b2.hits, 0, 'the refused configuration served nothing');
});
