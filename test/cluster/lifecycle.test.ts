/**
 * A cluster's processes over time: a worker killed with SIGKILL is restarted
 * and traffic keeps flowing; SIGTERM to the primary lets a slow request
 * finish, then every process exits and the primary exits 0. Real CLI (its
 * own process group), real backends.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startBackend, startBackends } from '../helpers/backends.js';
import { runLb, startLb } from '../helpers/lb-process.js';
import { request, type TestResponse } from '../helpers/http-client.js';
import { within } from '../helpers/waiting.js';
import { alive, backendList, clusterHead, eventually, primaryLines, startCluster } from './support.js';

test('kill -9 one worker: it is restarted, and only the request in flight on it may fail', async (t) => {
  const backends = await startBackends(2);
  t.after(() => Promise.all(backends.map((b) => b.close())).then(() => {}));
  const cluster = await startCluster(t, (port) => `${clusterHead(port)}
[pools.web]
backends = ${backendList(backends)}
`);
  const before = await cluster.status();
  const victim = before.workers.find((w) => w.id === 1)!;
  const survivor = before.workers.find((w) => w.id === 2)!;

  // One client, one request at a time, a fresh connection each: at most one is in flight on the killed worker.
  const url = `http://127.0.0.1:${cluster.port}/`;
  const failures: string[] = [];
  let ok = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const res = await request(url, { timeoutMs: 3000 });
        if (res.status === 200) ok++;
        else failures.push(`${res.status} ${res.body}`);
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
  })();
  try {
    await eventually('traffic flowing', 2000, async () => (ok >= 20 ? true : undefined));
    process.kill(victim.pid!, 'SIGKILL');
    await cluster.lb.waitForLog((l) => /^worker 1 restarted/.test(l.msg), 10_000);
    const okAtRestart = ok;
    await eventually('traffic after the restart', 3000, async () => (ok >= okAtRestart + 50 ? true : undefined));
  } finally {
    running = false;
    await loop;
  }
  assert.ok(failures.length <= 1, `failed: ${failures.join(' | ')}`);

  const after = await cluster.status();
  const restarted = after.workers.find((w) => w.id === 1)!;
  assert.notEqual(restarted.pid, victim.pid);
  assert.equal(restarted.restarts, 1);
  assert.equal(restarted.state, 'serving');
  assert.equal(restarted.generation, 1);
  assert.equal(after.workers.find((w) => w.id === 2)!.pid, survivor.pid, 'the other worker was left alone');
  assert.equal(alive(victim.pid!), false);
  const crashLines = primaryLines(cluster.lb, (l) => /exited unexpectedly \(SIGKILL\)/.test(l.msg));
  assert.equal(crashLines.length, 1);
});

test('SIGTERM to the primary during a slow request: it completes with 200, every process exits, the primary exits 0', async (t) => {
  let slowArrived: () => void;
  const arrived = new Promise<void>((resolve) => (slowArrived = resolve));
  const backend = await startBackend('slow', (req, res) => {
    if (req.url !== '/slow') {
      res.end('fast');
      return;
    }
    slowArrived();
    setTimeout(() => res.end('slow done'), 800);
  });
  t.after(() => backend.close());
  const cluster = await startCluster(t, (port) => `${clusterHead(port)}
[pools.web]
backends = [{ url = "${backend.url}" }]
`);
  const pids = (await cluster.status()).workers.map((w) => w.pid!);
  const slow: Promise<TestResponse> = request(`http://127.0.0.1:${cluster.port}/slow`, { timeoutMs: 5000 });
  await arrived;
  const exited = once(cluster.lb.child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  cluster.lb.child.kill('SIGTERM');
  const res = await slow;
  assert.equal(res.status, 200);
  assert.equal(res.body, 'slow done');
  const [code, signal] = await exited;
  assert.equal(signal, null);
  assert.equal(code, 0, 'the primary exits 0');
  await eventually('every worker exited', 2000, async () => (pids.every((pid) => !alive(pid)) ? true : undefined));
  assert.ok(primaryLines(cluster.lb, (l) => l.msg === 'shutdown complete').length === 1);
});

test('SIGTERM to the primary the moment it reports listening, its config watcher still starting: graceful all the same, exit 0', async (t) => {
  const backend = await startBackend('b');
  const dir = await mkdtemp(join(tmpdir(), 'lb-cluster-'));
  t.after(async () => {
    await backend.close();
    await rm(dir, { recursive: true, force: true });
  });
  const file = join(dir, 'lb.toml');
  await writeFile(file, `${clusterHead(await freePort())}\n[pools.web]\nbackends = [{ url = "${backend.url}" }]\n`);
  const lb = await startLb(file, [], { processGroup: true });
  t.after(() => lb.stop());
  const exited = once(lb.child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  lb.child.kill('SIGTERM');
  const [code, signal] = await within(exited, 15_000, `lb did not exit within 15 s of SIGTERM; its output:\n${lb.text.join('\n')}\n${lb.logs.map((l) => l.msg).join('\n')}`);
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, lb.text.join('\n'));
  assert.ok(primaryLines(lb, (l) => l.msg === 'shutdown complete').length === 1);
});

test('a middleware that cannot start (created in the workers only) stops lb run with its file:line:col and exit code 1', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'lb-cluster-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const backend = await startBackend('b1');
  t.after(() => backend.close());
  const file = join(dir, 'lb.toml');
  await writeFile(join(dir, 'fails.mjs'), `export default { name: 'fails', kind: 'middleware', create() { throw new Error('cannot start here'); } };\n`);
  await writeFile(file, `${clusterHead(await freePort())}
[[pipeline]]
plugin = "./fails.mjs"

[pools.web]
backends = [{ url = "${backend.url}" }]
`);
  const { code, stderr } = await runLb(['run', '-c', file]);
  assert.equal(code, 1, stderr);
  assert.match(stderr, /lb\.toml:10:1 pipeline\[0\]\.plugin: plugin "\.\/fails\.mjs" failed to start: cannot start here\n1 problem\(s\) in /);
});
