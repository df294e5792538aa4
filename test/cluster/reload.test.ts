/**
 * Reload with `workers = 2`: the primary reads and validates lb.toml once and
 * hands it to both workers (both move to the new generation, traffic moves
 * within 2 s, one log line); a broken save is refused once, by the primary,
 * and changes nothing on either worker. Real CLI, real backends.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { startBackend, startBackends, type TestBackend } from '../helpers/backends.js';
import { request, type TestResponse } from '../helpers/http-client.js';
import { parsePrometheusText } from '../admin/prometheus-text.js';
import { WORKER_ENV } from '../../src/cluster/messages.js';
import { alive, backendList, clusterHead, eventually, primaryLines, spread, startCluster, workerLines } from './support.js';

const LIVE = /^configuration generation (\d+) is live/;
const NOT_APPLIED = /^configuration not applied/;

function toml(backends: readonly TestBackend[]): (port: number) => string {
  return (port) => `${clusterHead(port)}
[pools.web]
backends = ${backendList(backends)}
`;
}

/** Fresh connections until `streak` answers in a row come from `names`; ms it took. */
async function untilServedBy(url: string, names: readonly string[], deadlineMs: number, streak = 30): Promise<number> {
  const started = Date.now();
  let run = 0;
  const seen: string[] = [];
  while (Date.now() - started < deadlineMs) {
    const res = await request(url);
    assert.equal(res.status, 200, `a request failed during the reload: ${res.status} ${res.body}`);
    seen.push(res.body);
    run = names.includes(res.body) ? run + 1 : 0;
    if (run >= streak) return Date.now() - started;
  }
  assert.fail(`not served only by ${names.join(', ')} within ${deadlineMs}ms; last answers: ${seen.slice(-12).join(' ')}`);
}

/** Long enough for a late (duplicate) line from a worker to arrive. */
function settle(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

test('an lb.toml edit reaches both workers within 2 s, validated and logged once; a broken save changes nothing on either', async (t) => {
  const all = await startBackends(4);
  t.after(() => Promise.all(all.map((b) => b.close())).then(() => {}));
  const [old1, old2, new1, new2] = all as [TestBackend, TestBackend, TestBackend, TestBackend];
  const cluster = await startCluster(t, toml([old1, old2]));
  const url = `http://127.0.0.1:${cluster.port}/`;
  const first = await spread(url, 20, 4);
  assert.ok(first.every((r) => r.status === 200 && (r.body === 'b1' || r.body === 'b2')), 'served by the first set (named b1, b2)');

  const from = cluster.lb.logs.length;
  await cluster.write(toml([new1, new2])(cluster.port));
  const ms = await untilServedBy(url, ['b3', 'b4'], 2000);
  const status = await eventually('both workers on generation 2', 2000 - ms, async () => {
    const s = await cluster.status();
    return s.workers.every((w) => w.generation === 2) ? s : undefined;
  });
  assert.equal(status.generation, 2);
  // Both workers serve the new set: a spread of fresh connections lands on both, and every answer is from it.
  const afterReload = await spread(url, 60, 4);
  assert.ok(afterReload.every((r) => r.status === 200 && (r.body === 'b3' || r.body === 'b4')));

  await settle(300);
  const fresh = (match: RegExp) => cluster.lb.logs.slice(from).filter((l) => match.test(l.msg));
  const live = fresh(LIVE);
  assert.equal(live.length, 1, `one "is live" line for the cluster: ${JSON.stringify(live)}`);
  assert.equal(live[0]!.pid, cluster.lb.child.pid, 'logged by the primary');
  assert.equal(live[0]!.workers, 2);
  assert.match(live[0]!.msg, /^configuration generation 2 is live \(.*\) in \d+ms on 2 workers$/);

  const broken = cluster.lb.logs.length;
  await cluster.write('[server\nlisten = ');
  const refused = await cluster.lb.waitForLog((l) => NOT_APPLIED.test(l.msg), 3000, broken);
  assert.match(refused.msg, /lb\.toml:1:\d+/, 'the problem is reported at file:line:col');
  await settle(300);
  const refusals = cluster.lb.logs.slice(broken).filter((l) => NOT_APPLIED.test(l.msg));
  assert.equal(refusals.length, 1, 'validated once (by the primary), not once per worker');
  assert.equal(primaryLines(cluster.lb, (l) => NOT_APPLIED.test(l.msg)).length, 1);
  assert.equal(workerLines(cluster.lb, (l) => l.level >= 40).length, 0, 'no worker saw the broken file');

  const unchanged = await cluster.status();
  assert.equal(unchanged.generation, 2);
  assert.deepEqual(unchanged.workers.map((w) => w.generation), [2, 2]);
  const still = await spread(url, 30, 4);
  assert.ok(still.every((r) => r.status === 200 && (r.body === 'b3' || r.body === 'b4')), 'still served by the second set');

  // SIGHUP reloads even an unchanged file: both workers follow again. (Saved back as it was, the file is no change to the watcher.)
  await cluster.write(toml([new1, new2])(cluster.port));
  await settle(300);
  assert.equal((await cluster.status()).generation, 2);
  cluster.lb.child.kill('SIGHUP');
  await eventually('both workers on generation 3 after SIGHUP', 3000, async () => {
    const s = await cluster.status();
    return s.generation === 3 && s.workers.every((w) => w.generation === 3) ? true : undefined;
  });
});

test('changing server.workers in a reload starts or stops workers', async (t) => {
  const backends = await startBackends(1);
  t.after(() => Promise.all(backends.map((b) => b.close())).then(() => {}));
  const cluster = await startCluster(t, toml(backends));
  const three = toml(backends)(cluster.port).replace('workers = 2', 'workers = 3');
  await cluster.write(three);
  const grown = await eventually('three workers serving', 5000, async () => {
    const s = await cluster.status();
    return s.workers.length === 3 && s.workers.every((w) => w.state === 'serving') ? s : undefined;
  });
  assert.deepEqual(grown.workers.map((w) => w.id), [1, 2, 3]);
  assert.equal(grown.workers[2]!.generation, 2, 'the new worker starts on the configuration serving now');
  const retired = grown.workers.slice(1).map((w) => w.pid!);

  await cluster.write(three.replace('workers = 3', 'workers = 1'));
  const shrunk = await eventually('one worker left', 5000, async () => {
    const s = await cluster.status();
    return s.workers.length === 1 ? s : undefined;
  });
  assert.equal(shrunk.workers[0]!.id, 1);
  assert.equal(primaryLines(cluster.lb, (l) => /exited unexpectedly/.test(l.msg)).length, 0, 'stopped workers are not restarted');
  const responses = await spread(`http://127.0.0.1:${cluster.port}/`, 20, 2);
  assert.ok(responses.every((r) => r.status === 200));
  await eventually('stopped workers exited', 3000, async () => (retired.every((pid) => !alive(pid)) ? true : undefined));
});

test('shrinking then growing while a stopped worker still drains gives the new worker an id of its own', async (t) => {
  // The backend holds every request until the end, and learns which worker sent it (a middleware file tags it).
  const held: ServerResponse[] = [];
  const seenFrom = new Set<string>();
  let arrived: (() => void) | undefined;
  const backend = await startBackend('slow', (req, res) => {
    held.push(res);
    seenFrom.add(String(req.headers['x-worker']));
    arrived?.();
  });
  t.after(async () => {
    for (const res of held) if (!res.writableEnded) res.end('late');
    await backend.close();
  });
  const tagWorker = `export default { name: 'tag-worker', kind: 'middleware', create() {
  const id = process.env.${WORKER_ENV.id};
  return { handle(ctx, next) { ctx.headers['x-worker'] = id; return next(); } };
} };
`;
  const cluster = await startCluster(
    t,
    (port) => `${clusterHead(port).replace('shutdown_grace = "3s"', 'shutdown_grace = "10s"')}
[[pipeline]]
plugin = "./tag-worker.mjs"

[pools.web]
backends = [{ url = "${backend.url}" }]
`,
    { 'tag-worker.mjs': tagWorker },
  );

  // Requests on fresh connections until one is in flight on worker 2.
  const url = `http://127.0.0.1:${cluster.port}/`;
  const pending: Promise<TestResponse>[] = [];
  for (let i = 0; i < 100 && !seenFrom.has('2'); i++) {
    const came = new Promise<void>((resolve) => (arrived = resolve));
    pending.push(request(url, { timeoutMs: 20_000 }));
    await came;
  }
  assert.ok(seenFrom.has('2'), `no request reached worker 2 (seen from: ${[...seenFrom].join(', ')})`);

  const two = await readFile(cluster.file, 'utf8');
  let from = cluster.lb.logs.length;
  await cluster.save(two.replace('workers = 2', 'workers = 1'));
  await cluster.lb.waitForLog((l) => /^server\.workers is now 1: stopping worker 2/.test(l.msg), 5000, from);
  from = cluster.lb.logs.length;
  await cluster.save(two);
  const starting = await cluster.lb.waitForLog((l) => /^server\.workers is now 2: starting worker/.test(l.msg), 5000, from);
  assert.deepEqual(starting.starting, [3], 'worker 2 is still draining: the new one is worker 3');

  const grown = await eventually('worker 3 serving', 5000, async () => {
    const s = await cluster.status();
    return s.workers.find((w) => w.id === 3)?.state === 'serving' ? s : undefined;
  });
  assert.deepEqual(grown.workers.map((w) => `${w.id}:${w.state}`), ['1:serving', '2:stopping', '3:serving']);
  const metrics = parsePrometheusText((await request(`${cluster.admin}/metrics`)).body);
  const restartSeries = metrics.get('switchyard_worker_restarts_total')!.samples.map((s) => s.labels.worker);
  assert.deepEqual(restartSeries, ['1', '2', '3'], 'one series per worker slot');

  // The stopped worker finishes what it had in flight, then leaves.
  for (const res of held) res.end('done');
  const answers = await Promise.all(pending);
  assert.deepEqual([...new Set(answers.map((r) => `${r.status} ${r.body}`))], ['200 done']);
  const after = await eventually('worker 2 gone', 5000, async () => {
    const s = await cluster.status();
    return s.workers.length === 2 ? s : undefined;
  });
  assert.deepEqual(after.workers.map((w) => `${w.id}:${w.state}`), ['1:serving', '3:serving']);
  const counted = after.pools.web!.backends[0]!;
  assert.deepEqual([counted.requests, counted.responses['2xx']], [pending.length, pending.length], 'what the stopped worker answered while draining is counted');
});
