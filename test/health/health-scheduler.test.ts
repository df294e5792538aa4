/**
 * Active and passive health detection end to end: real backends on
 * 127.0.0.1, a real Switchyard, traffic and /status seen from outside.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSwitchyard, type RunningSwitchyard } from '../../src/testing.js';
import { freePort } from '../helpers/backends.js';
import { readRequestHead, startRawBackend } from '../helpers/raw-http.js';
import {
  adminUrl,
  closeAll,
  getJson,
  spread,
  startCheckedBackend,
  startCheckedBackends,
  waitFor,
  type CheckedBackend,
} from './support.js';

function backendList(backends: readonly { url: string }[]): string {
  return `[${backends.map((b) => `{ url = "${b.url}" }`).join(', ')}]`;
}

function config(backends: readonly { url: string }[], health: string, extra = ''): string {
  return `
[server]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[pools.web]
backends = ${backendList(backends)}
${extra}
${health}
`;
}

async function backendStatus(lb: RunningSwitchyard, url: string, pool = 'web'): Promise<any> {
  const status = await getJson(`${adminUrl(lb.lb)}/status`);
  return status.pools[pool].backends.find((b: { url: string }) => b.url === url);
}

test('a backend whose /healthz fails leaves rotation within 1.5 s, and comes back within 1.5 s of healing', async (t) => {
  const backends = await startCheckedBackends(3);
  t.after(() => closeAll(backends));
  const lb = await startSwitchyard({
    toml: config(backends, '[pools.web.health]\nchecker = "http"\npath = "/healthz"\ninterval = "200ms"\nunhealthy_after = 2'),
  });
  t.after(() => lb.close());
  const sick = backends[1]!;

  assert.deepEqual(await spread(lb.url, 6), { b1: 2, b2: 2, b3: 2 });

  sick.healthStatus = 503;
  const failedAt = performance.now();
  await waitFor('b2 to get no traffic', async () => (await spread(lb.url, 6)).b2 === undefined, 1500);
  const leftAfter = performance.now() - failedAt;
  assert.deepEqual(await spread(lb.url, 30), { b1: 15, b3: 15 });
  const down = await backendStatus(lb, sick.url);
  assert.equal(down.state, 'down');
  assert.equal(down.reason, 'status 503');

  sick.healthStatus = 200;
  const healedAt = performance.now();
  await waitFor('b2 to get traffic again', async () => ((await spread(lb.url, 6)).b2 ?? 0) > 0, 1500);
  const backAfter = performance.now() - healedAt;
  const up = await backendStatus(lb, sick.url);
  assert.equal(up.state, 'up');
  assert.equal(up.reason, 'status 200');
  assert.ok(up.health_checks.failed >= 2, `failed probes were counted: ${JSON.stringify(up.health_checks)}`);
  assert.equal(typeof up.last_probe_ms, 'number');
  t.diagnostic(`left rotation ${Math.round(leftAfter)}ms after /healthz failed, back ${Math.round(backAfter)}ms after it healed`);
});

test('tcp checks take a backend whose port is closed out of rotation', async (t) => {
  const backends = await startCheckedBackends(2);
  t.after(() => closeAll(backends));
  const deadPort = await freePort();
  const dead = { url: `http://127.0.0.1:${deadPort}` };
  const lb = await startSwitchyard({
    toml: config([...backends, dead], 'health = { checker = "tcp", interval = "100ms", timeout = "200ms", unhealthy_after = 2 }', 'passive_failures = 0'),
  });
  t.after(() => lb.close());

  const status = await waitFor('the closed port to be down', async () => {
    const s = await backendStatus(lb, dead.url);
    return s.state === 'down' && s;
  }, 2000);
  assert.equal(status.reason, 'ECONNREFUSED');
  assert.deepEqual(await spread(lb.url, 20), { b1: 10, b2: 10 });
  for (const b of backends) assert.equal((await backendStatus(lb, b.url)).state, 'up');
  // The tcp checker sends no HTTP request.
  assert.equal(backends[0]!.probes, 0);
});

test('with no health table, passive detection takes a dead backend out after passive_failures, and lets it back after the cooldown', async (t) => {
  const backends = await startCheckedBackends(2);
  const deadPort = await freePort();
  const dead = { url: `http://127.0.0.1:${deadPort}` };
  let revived: CheckedBackend | undefined;
  t.after(() => closeAll(revived ? [...backends, revived] : backends));
  // The cooldown must outlast the 32 requests and the /status read below that
  // expect the backend out: a loaded machine took 600 ms over them, past a 400 ms one.
  const lb = await startSwitchyard({ toml: config([...backends, dead], '', 'passive_failures = 2\npassive_cooldown = "2s"') });
  t.after(() => lb.close());

  const first = await spread(lb.url, 12);
  // Two requests reach the dead port (502), then it is out.
  assert.equal(first['status 502'], 2, JSON.stringify(first));
  assert.deepEqual(await spread(lb.url, 20), { b1: 10, b2: 10 });
  const status = await backendStatus(lb, dead.url);
  assert.equal(status.state, 'down');
  assert.equal(status.reason, 'ECONNREFUSED on live traffic (2 in a row)');
  assert.equal(status.health_checks, null);

  revived = await startCheckedBackend('b3', deadPort);
  await waitFor('the cooldown to let b3 back', async () => ((await spread(lb.url, 6)).b3 ?? 0) > 0, 5000);
  const back = await backendStatus(lb, dead.url);
  assert.equal(back.state, 'unknown');
  assert.match(back.reason, /cooldown/);
});

test('passive detection counts invalid responses: a backend answering garbage is taken out like one refusing connections', async (t) => {
  const backends = await startCheckedBackends(2);
  t.after(() => closeAll(backends));
  const garbage = await startRawBackend(async (socket) => {
    while (!socket.destroyed) {
      await readRequestHead(socket);
      socket.resume();
      socket.write('HTTP/1.1 abc OK\r\n\r\n');
    }
  });
  t.after(() => garbage.close());
  const lb = await startSwitchyard({ toml: config([...backends, garbage], '', 'passive_failures = 2\npassive_cooldown = "1m"') });
  t.after(() => lb.close());

  const first = await spread(lb.url, 12);
  assert.equal(first['status 502'], 2, JSON.stringify(first));
  assert.deepEqual(await spread(lb.url, 20), { b1: 10, b2: 10 });
  const status = await backendStatus(lb, garbage.url);
  assert.equal(status.state, 'down');
  assert.equal(status.reason, 'HPE_INVALID_STATUS on live traffic (2 in a row)', 'what llhttp refused');
});

test('passive detection marks a backend down at once; active checks bring it back', async (t) => {
  const backends = await startCheckedBackends(2);
  const deadPort = await freePort();
  let revived: CheckedBackend | undefined;
  t.after(() => closeAll(revived ? [...backends, revived] : backends));
  const dead = { url: `http://127.0.0.1:${deadPort}` };
  // Active checks every 150ms; passive detection needs only one failure.
  const lb = await startSwitchyard({
    toml: config([...backends, dead], '[pools.web.health]\ninterval = "150ms"\nunhealthy_after = 5\nhealthy_after = 2', 'passive_failures = 1'),
  });
  t.after(() => lb.close());
  const tally = await spread(lb.url, 9);
  assert.equal(tally['status 502'] ?? 0, 1, `one failed request took it out before 5 probes could: ${JSON.stringify(tally)}`);
  assert.equal((await backendStatus(lb, dead.url)).state, 'down');

  revived = await startCheckedBackend('b3', deadPort);
  const up = await waitFor('active checks to bring it back', async () => {
    const s = await backendStatus(lb, dead.url);
    return s.state === 'up' && s;
  }, 3000);
  assert.ok(revived.probes >= 2, `healthy_after = 2 needs two passing probes, saw ${revived.probes}`);
  assert.equal(up.reason, 'status 200');
});

test('after active checks bring a passively failed backend back, it takes passive_failures fresh failures to go down again', async (t) => {
  const backends = await startCheckedBackends(1);
  t.after(() => closeAll(backends));
  const [b1] = backends as [CheckedBackend];
  // Live traffic is reset. /healthz fails except while the checks are to bring it back, and
  // unhealthy_after is out of reach: only passive detection takes it out, only the checks bring it back.
  b1.healthStatus = 503;
  b1.handler = (req, res) => {
    if (req.url === '/healthz') return void res.writeHead(b1.healthStatus).end();
    req.socket.destroy();
  };
  const lb = await startSwitchyard({
    toml: config(backends, '[pools.web.health]\ninterval = "50ms"\nunhealthy_after = 1000\nhealthy_after = 1', 'passive_failures = 3'),
  });
  t.after(() => lb.close());
  const backend = lb.lb.registry.get(b1.url)!;

  assert.deepEqual(await spread(lb.url, 3), { 'status 502': 3 });
  assert.equal(backend.state, 'down');
  b1.healthStatus = 200;
  await waitFor('active checks to bring it back', () => backend.state === 'up', 3000);
  b1.healthStatus = 503;

  // One failure is not three in a row: the passing check in between vouched for it.
  assert.deepEqual(await spread(lb.url, 1), { 'status 502': 1 });
  assert.equal(backend.state, 'up', `one failure took it out again: ${backend.reason}`);
  assert.deepEqual(await spread(lb.url, 2), { 'status 502': 2 });
  assert.equal(backend.state, 'down');
  assert.match(backend.reason, /on live traffic \(3 in a row\)$/);
});

test('one dropped probe does not take a backend out with unhealthy_after = 2', async (t) => {
  const backends = await startCheckedBackends(2);
  t.after(() => closeAll(backends));
  const lb = await startSwitchyard({ toml: config(backends, '[pools.web.health]\ninterval = "100ms"\nunhealthy_after = 2') });
  t.after(() => lb.close());
  const flaky = backends[0]!;
  await waitFor('b1 to be up', async () => (await backendStatus(lb, flaky.url)).state === 'up', 2000);

  const upSince = (await backendStatus(lb, flaky.url)).changed_at;
  // Fail exactly the next probe, then answer again.
  const seen = flaky.probes;
  flaky.healthStatus = 503;
  await waitFor('one failed probe', () => flaky.probes > seen, 2000, 2);
  flaky.healthStatus = 200;
  const after = flaky.probes;
  await waitFor('three more probes', () => flaky.probes >= after + 3, 2000);

  const status = await backendStatus(lb, flaky.url);
  assert.equal(status.state, 'up');
  assert.equal(status.changed_at, upSince, 'it never left rotation');
  assert.equal(status.health_checks.failed, 1);
  assert.deepEqual(await spread(lb.url, 10), { b1: 5, b2: 5 });
});

test('health checks do not multiply: pools sharing backends send one probe per backend per interval', async (t) => {
  const backends = await startCheckedBackends(4);
  t.after(() => closeAll(backends));
  const [b1, b2, b3, b4] = backends as [CheckedBackend, CheckedBackend, CheckedBackend, CheckedBackend];
  const health = (pool: string) => `[pools.${pool}.health]\ninterval = "100ms"\n`;
  const lb = await startSwitchyard({
    toml: `
[server]
listen = "127.0.0.1:0"
[pools.a]
backends = ${backendList([b1, b2, b3])}
${health('a')}
[pools.b]
backends = ${backendList([b2, b3, b4])}
${health('b')}
[pools.c]
strategy = "least-connections"
backends = ${backendList([b4, b1])}
${health('c')}
[[routes]]
match = { path_prefix = "/a" }
pool = "a"
[[routes]]
match = { path_prefix = "/b" }
pool = "b"
[[routes]]
pool = "c"
`,
  });
  t.after(() => lb.close());
  assert.equal(lb.lb.health.checkedUrls.length, 4);
  await waitFor('every backend probed', () => backends.every((b) => b.probes > 0), 2000);

  const windowMs = 1500;
  const before = backends.map((b) => b.probes);
  await new Promise((resolve) => setTimeout(resolve, windowMs));
  const counts = backends.map((b, i) => b.probes - before[i]!);
  const expected = windowMs / 100;
  t.diagnostic(`probes per backend in ${windowMs}ms at a 100ms interval: ${counts.join(', ')}`);
  for (const [i, count] of counts.entries()) {
    // One loop gives ~15 (jitter and timer lateness move it by one or two); two loops would give ~30.
    assert.ok(count >= expected - 3 && count <= expected + 1, `b${i + 1} got ${count} probes, expected about ${expected}`);
  }
});

test('a backend starts unknown and serves until its checks fail unhealthy_after times', async (t) => {
  const backends = await startCheckedBackends(3);
  t.after(() => closeAll(backends));
  for (const b of backends) b.healthStatus = 500;
  const lb = await startSwitchyard({ toml: config(backends, '[pools.web.health]\ninterval = "5s"\nunhealthy_after = 2') });
  t.after(() => lb.close());
  // The first probe may already have failed, the second is 5 s away: all three serve.
  assert.deepEqual(await spread(lb.url, 9), { b1: 3, b2: 3, b3: 3 });
  const status = await getJson(`${adminUrl(lb.lb)}/status`);
  for (const b of status.pools.web.backends) assert.equal(b.state, 'unknown');
});

test('an http probe slower than timeout fails with "timeout after …"', async (t) => {
  const backends = await startCheckedBackends(2);
  t.after(() => closeAll(backends));
  const slow = backends[0]!;
  slow.healthHangs = true;
  const lb = await startSwitchyard({ toml: config(backends, '[pools.web.health]\ninterval = "50ms"\ntimeout = "150ms"\nunhealthy_after = 2') });
  t.after(() => lb.close());
  const status = await waitFor('the slow backend to be down', async () => {
    const s = await backendStatus(lb, slow.url);
    return s.state === 'down' && s;
  }, 3000);
  assert.equal(status.reason, 'timeout after 150ms');
  assert.ok(status.last_probe_ms >= 140, `last probe took ${status.last_probe_ms}ms`);
});

test('a third-party checker by path: never two probes in flight per backend, aborted at timeout, results counted', async (t) => {
  const backends = await startCheckedBackends(2);
  t.after(() => closeAll(backends));
  const stats = { inFlight: 0, maxInFlight: 0, calls: 0, aborted: 0 };
  (globalThis as Record<string, unknown>).__switchyardProbeStats = stats;
  t.after(() => delete (globalThis as Record<string, unknown>).__switchyardProbeStats);
  // Hangs until its signal aborts, for the backend named in \`hang\`; answers at once for the others.
  const checker = `
export default {
  name: 'slow-check',
  kind: 'health',
  schema: { type: 'object', properties: { hang: { type: 'string' } }, required: ['hang'], additionalProperties: false },
  create(config) {
    const stats = globalThis.__switchyardProbeStats;
    return {
      check(target, signal) {
        stats.calls++;
        if (target.url !== config.hang) return Promise.resolve({ healthy: true, reason: 'fine' });
        stats.inFlight++;
        stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
        return new Promise((resolve, reject) => {
          signal.addEventListener('abort', () => { stats.inFlight--; stats.aborted++; reject(signal.reason); }, { once: true });
        });
      },
    };
  },
};`;
  const hung = backends[0]!;
  const lb = await startSwitchyard({
    files: { 'slow-check.mjs': checker },
    toml: config(
      backends,
      `[pools.web.health]\nchecker = "./slow-check.mjs"\nhang = "${hung.url}"\ninterval = "30ms"\ntimeout = "100ms"\nunhealthy_after = 3`,
    ),
  });
  t.after(() => lb.close());
  const status = await waitFor('the hung backend to be down', async () => {
    const s = await backendStatus(lb, hung.url);
    return s.state === 'down' && s;
  }, 3000);
  assert.equal(status.reason, 'timeout after 100ms');
  await waitFor('two more timeouts', () => stats.aborted >= 5, 3000);
  assert.equal(stats.maxInFlight, 1, 'never more than one probe in flight per backend');
  const other = await backendStatus(lb, backends[1]!.url);
  assert.equal(other.state, 'up');
  assert.equal(other.reason, 'fine');
  assert.ok(other.health_checks.passed >= 5);
  assert.equal(other.health_checks.failed, 0);
  // Its probes run on their own interval, not held up by the hung backend's.
  assert.ok(other.health_checks.passed > status.health_checks.failed, JSON.stringify([other.health_checks, status.health_checks]));
});

test('a checker throwing EMFILE is inconclusive: state and consecutive counts stay, one warning then counted; ECONNREFUSED still takes it down', async (t) => {
  const backends = await startCheckedBackends(1);
  t.after(() => closeAll(backends));
  const backend = backends[0]!;
  // Each probe plays the next answer; the last one repeats. One failure, a run
  // of local shortages longer than unhealthy_after, one more failure: the
  // backend goes down only if the shortages neither counted as failures nor
  // reset the count.
  const script = { answers: ['ok', 'refused', ...Array<string>(6).fill('emfile'), 'refused', 'emfile'], calls: 0 };
  (globalThis as Record<string, unknown>).__switchyardScriptedCheck = script;
  t.after(() => delete (globalThis as Record<string, unknown>).__switchyardScriptedCheck);
  const checker = `
export default {
  name: 'scripted-check',
  kind: 'health',
  schema: { type: 'object', properties: {}, additionalProperties: false },
  create() {
    const script = globalThis.__switchyardScriptedCheck;
    return {
      async check() {
        const answer = script.answers[Math.min(script.calls++, script.answers.length - 1)];
        if (answer === 'ok') return { healthy: true, reason: 'fine' };
        const code = answer === 'emfile' ? 'EMFILE' : 'ECONNREFUSED';
        throw Object.assign(new Error(code + ' from the checker'), { code });
      },
    };
  },
};`;
  const lb = await startSwitchyard({
    captureLogs: true,
    files: { 'scripted-check.mjs': checker },
    toml: config([backend], '[pools.web.health]\nchecker = "./scripted-check.mjs"\ninterval = "20ms"\nunhealthy_after = 2'),
  });
  let closed = false;
  t.after(() => (closed ? undefined : lb.close()));
  await waitFor('the whole script to be played', () => script.calls > script.answers.length + 2, 5000);

  const status = await backendStatus(lb, backend.url);
  assert.equal(status.state, 'down');
  assert.equal(status.reason, 'ECONNREFUSED');
  assert.equal(status.health_checks.passed, 1);
  assert.equal(status.health_checks.failed, 2);
  assert.ok(status.health_checks.inconclusive >= 7, JSON.stringify(status.health_checks));
  const changes = lb.logs.filter((l) => l.backend === backend.url && l.from !== undefined);
  assert.deepEqual(
    changes.map((l) => [l.from, l.to, l.reason]),
    [
      ['unknown', 'up', 'fine'],
      ['up', 'down', 'ECONNREFUSED'],
    ],
    'six EMFILE probes in a row did not take it down, and kept its one failure toward unhealthy_after',
  );

  const isShortage = (l: { err?: unknown; level: number }) => l.err === 'EMFILE' && l.level === 40;
  const warnings = lb.logs.filter(isShortage);
  assert.equal(warnings.length, 1, 'logged once; the repeats are counted');
  assert.equal(warnings[0]!.backend, backend.url);
  assert.match(warnings[0]!.msg, new RegExp(`^health check of ${backend.url} could not run, so it counts neither way and the backend stays up: this process is out of file descriptors \\(EMFILE\\); raise its open-files limit \\(ulimit -n`));
  assert.match(warnings[0]!.msg, /or lower the number of client connections$/);

  // Shutdown reports what the window counted.
  closed = true;
  await lb.close();
  const counted = lb.logs.filter(isShortage);
  assert.equal(counted.length, 2);
  assert.ok((counted[1]!.repeated as number) >= 6, JSON.stringify(counted[1]));
  assert.match(counted[1]!.msg, /more like it in the last/);
});

test('all backends of a pool down → 503 with Retry-After and a body naming the pool', async (t) => {
  const backends = await startCheckedBackends(2);
  t.after(() => closeAll(backends));
  for (const b of backends) b.healthStatus = 503;
  const lb = await startSwitchyard({ toml: config(backends, '[pools.web.health]\ninterval = "50ms"\nunhealthy_after = 1') });
  t.after(() => lb.close());
  const res = await waitFor('a 503', async () => {
    const r = await fetch(lb.url);
    const body = await r.text();
    return r.status === 503 && { headers: r.headers, body };
  }, 2000);
  assert.equal(res.headers.get('retry-after'), '1');
  assert.match(res.body, /pool "web"/);
});

test('every state change is logged once, with pool, backend, old → new state and reason', async (t) => {
  const backends = await startCheckedBackends(2);
  t.after(() => closeAll(backends));
  const [b1, b2] = backends as [CheckedBackend, CheckedBackend];
  const lb = await startSwitchyard({
    captureLogs: true,
    toml: `
[server]
listen = "127.0.0.1:0"
[pools.web]
backends = ${backendList([b1, b2])}
[pools.web.health]
interval = "50ms"
unhealthy_after = 1
[pools.api]
backends = ${backendList([b2])}
[[routes]]
pool = "web"
`,
  });
  t.after(() => lb.close());
  await waitFor('b2 up', () => lb.lb.registry.get(b2.url)!.state === 'up', 2000);
  b2.healthStatus = 503;
  await waitFor('b2 down', () => lb.lb.registry.get(b2.url)!.state === 'down', 2000);
  b2.healthStatus = 200;
  await waitFor('b2 up again', () => lb.lb.registry.get(b2.url)!.state === 'up', 2000);
  // Let a few more (passing) probes run: they must not log anything.
  const probes = b2.probes;
  await waitFor('more probes', () => b2.probes >= probes + 3, 2000);

  const lines = lb.logs.filter((l) => l.backend === b2.url && l.from !== undefined);
  assert.deepEqual(
    lines.map((l) => [l.pool, l.from, l.to, l.reason]),
    [
      ['web,api', 'unknown', 'up', 'status 200'],
      ['web,api', 'up', 'down', 'status 503'],
      ['web,api', 'down', 'up', 'status 200'],
    ],
  );
  assert.equal(lines[1]!.msg, `pool web,api backend ${b2.url}: up → down (status 503)`);
});

test('reload: state and counters survive, removed checks stop probing, shutdown stops every probe', async (t) => {
  const backends = await startCheckedBackends(2);
  t.after(() => closeAll(backends));
  const [b1, b2] = backends as [CheckedBackend, CheckedBackend];
  b2.healthStatus = 503;
  const health = '[pools.web.health]\ninterval = "50ms"\nunhealthy_after = 1';
  const lb = await startSwitchyard({ toml: config(backends, health) });
  t.after(() => lb.close());
  await waitFor('b2 down', () => lb.lb.registry.get(b2.url)!.state === 'down', 2000);
  const changedAt = lb.lb.registry.get(b2.url)!.changedAt;

  // Same checks, one more (commented) line: a new generation, same backend state.
  await lb.reload(config(backends, health, '# reloaded'));
  assert.equal(lb.lb.generation.id, 2);
  const kept = await backendStatus(lb, b2.url);
  assert.equal(kept.state, 'down');
  assert.equal(Date.parse(kept.changed_at), changedAt);
  const probes = b1.probes;
  await waitFor('probes to continue after the reload', () => b1.probes >= probes + 3, 2000);

  // Health table removed: probes stop and the down backend serves again (unknown), as an unchecked one would.
  await lb.reload(config(backends, ''));
  const afterRemoval = await backendStatus(lb, b2.url);
  assert.equal(afterRemoval.state, 'unknown');
  assert.equal(afterRemoval.health_checks, null);
  assert.equal(afterRemoval.last_probe_ms, null, 'no checks, no last check latency');
  // Not "up" either: no check vouches for it any more.
  const b1AfterRemoval = await backendStatus(lb, b1.url);
  assert.equal(b1AfterRemoval.state, 'unknown');
  assert.equal(b1AfterRemoval.reason, 'active health checks were removed from its pool');
  assert.equal(lb.lb.health.checkedUrls.length, 0);
  const frozen = b1.probes + b2.probes;
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(b1.probes + b2.probes, frozen, 'no probes without a health table');
  assert.deepEqual(await spread(lb.url, 4), { b1: 2, b2: 2 });

  // Back on, then shut down: nothing probes after close().
  await lb.reload(config(backends, health));
  const b1Probes = b1.probes;
  await waitFor('probes again', () => b1.probes >= b1Probes + 2, 2000);
  await lb.close();
  const atClose = b1.probes + b2.probes;
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(b1.probes + b2.probes, atClose, 'no probe after shutdown');
});

test('reloads more frequent than timeout neither lose a hung probe nor send extra ones: the backend still goes down', async (t) => {
  const backends = await startCheckedBackends(2);
  t.after(() => closeAll(backends));
  const [, hung] = backends as [CheckedBackend, CheckedBackend];
  hung.healthHangs = true;
  const health = '[pools.web.health]\ninterval = "400ms"\ntimeout = "300ms"\nunhealthy_after = 2';
  const lb = await startSwitchyard({ toml: config(backends, health) });
  t.after(() => lb.close());
  const backend = lb.lb.registry.get(hung.url)!;

  // Saves every ~100ms that leave the checks as they were (service discovery rewriting lb.toml, say).
  const started = performance.now();
  for (let i = 1; backend.state !== 'down'; i++) {
    assert.ok(performance.now() - started < 4000, `still ${backend.state} (${backend.reason}) after ${i} reloads and ${hung.probes} probes`);
    await lb.reload(config(backends, health, `# save ${i}`));
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.equal(backend.reason, 'timeout after 300ms');
  const elapsed = performance.now() - started;
  // One probe per interval (the first comes early), not one per reload.
  assert.ok(hung.probes <= Math.ceil(elapsed / 400) + 1, `${hung.probes} probes in ${Math.round(elapsed)}ms`);
});

test('a reload that shortens the interval while an unchanged check is in flight starts no second probe: the one in flight counts', async (t) => {
  const backends = await startCheckedBackends(2);
  t.after(() => closeAll(backends));
  const [, hung] = backends as [CheckedBackend, CheckedBackend];
  hung.healthHangs = true;
  const health = (interval: string) => `[pools.web.health]\ninterval = "${interval}"\ntimeout = "600ms"\nunhealthy_after = 1`;
  const lb = await startSwitchyard({ toml: config(backends, health('5s')) });
  t.after(() => lb.close());
  const backend = lb.lb.registry.get(hung.url)!;
  const wentDown = new Promise<void>((resolve) => {
    const onChange = ({ backend: changed, to }: { backend: unknown; to: string }): void => {
      if (changed !== backend || to !== 'down') return;
      lb.lb.registry.off('change', onChange);
      resolve();
    };
    lb.lb.registry.on('change', onChange);
  });

  await waitFor('the first probe of the hung backend', () => hung.probes === 1, 3000, 5);
  // The next probe falls due 100ms after this one started, long before its 600ms timeout.
  await lb.reload(config(backends, health('100ms')));
  await wentDown;
  assert.equal(backend.reason, 'timeout after 600ms');
  assert.equal(hung.probes, 1, 'a second probe was sent while the first was in flight (and the first one\'s verdict dropped)');
});
