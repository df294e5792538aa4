/**
 * The admin listener end to end: its endpoints over real sockets, /metrics
 * read by a strict exposition-format parser, and its life with reloads and
 * shutdown.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import vm from 'node:vm';
import { startSwitchyard } from '../../src/testing.js';
import { freePort } from '../helpers/backends.js';
import { adminUrl, closeAll, getJson, startCheckedBackends, waitFor } from '../health/support.js';
import { parsePrometheusText, sampleValue } from './prometheus-text.js';

function toml(backends: readonly { url: string }[], admin: string | undefined, extra = ''): string {
  return `
[server]
listen = "127.0.0.1:0"
${admin === undefined ? '' : `[admin]\nlisten = "${admin}"`}
[pools.web]
strategy = "round-robin"
backends = [${backends.map((b) => `{ url = "${b.url}" }`).join(', ')}]
${extra}
`;
}

test('/healthz, /status, unknown paths and methods', async (t) => {
  const backends = await startCheckedBackends(2);
  t.after(() => closeAll(backends));
  const lb = await startSwitchyard({ toml: toml(backends, '127.0.0.1:0', '[pools.web.health]\ninterval = "100ms"') });
  t.after(() => lb.close());
  const admin = adminUrl(lb.lb);
  assert.notEqual(lb.lb.adminAddress!.port, lb.port, 'admin is its own listener');

  const healthz = await fetch(`${admin}/healthz`);
  assert.equal(healthz.status, 200);
  assert.equal(await healthz.text(), 'ok\n');
  const head = await fetch(`${admin}/status`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), '');
  const post = await fetch(`${admin}/status`, { method: 'POST', body: 'x' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, HEAD');
  const missing = await fetch(`${admin}/nope`);
  assert.equal(missing.status, 404);
  assert.match(await missing.text(), /\/status/);

  for (let i = 0; i < 4; i++) await (await fetch(`${lb.url}/x`)).text();
  await waitFor('both backends up', async () => {
    const s = await getJson(`${admin}/status`);
    return s.pools.web.backends.every((b: { state: string }) => b.state === 'up');
  }, 2000);
  const status = await getJson(`${admin}/status`);
  assert.equal(status.generation, 1);
  assert.ok(Date.parse(status.loaded_at) <= Date.now());
  assert.deepEqual(status.reloads, { applied: 0, refused: 0, last_applied: null, last_refused: null });
  const pool = status.pools.web;
  assert.equal(pool.strategy, 'round-robin');
  assert.deepEqual(pool.health, { checker: 'http', interval_ms: 100, timeout_ms: 1000, unhealthy_after: 2, healthy_after: 1 });
  assert.deepEqual(pool.passive, { failures: 3, cooldown_ms: 10000 });
  assert.deepEqual(
    pool.backends.map((b: Record<string, unknown>) => Object.keys(b)),
    pool.backends.map(() => ['url', 'weight', 'state', 'reason', 'changed_at', 'last_probe_ms', 'active', 'requests', 'failures', 'responses', 'health_checks']),
  );
  const [first, second] = pool.backends;
  assert.equal(first.url, backends[0]!.url);
  assert.equal(first.weight, 1);
  assert.equal(first.state, 'up');
  assert.equal(first.reason, 'status 200');
  assert.equal(first.requests + second.requests, 4);
  assert.equal(first.responses['2xx'] + second.responses['2xx'], 4);
  assert.equal(first.active, 0);
  assert.equal(first.failures, 0);
  assert.ok(first.health_checks.passed >= 1);
});

test('/metrics parses as Prometheus text and its request counter rises with traffic', async (t) => {
  const backends = await startCheckedBackends(2);
  t.after(() => closeAll(backends));
  // b2 answers traffic with 503s; its /healthz passes until the test says otherwise.
  const checked = backends[1]!.handler;
  backends[1]!.handler = (req, res) => (req.url === '/healthz' ? checked(req, res) : res.writeHead(503).end('busy'));
  const lb = await startSwitchyard({ toml: toml(backends, '127.0.0.1:0', '[pools.web.health]\ninterval = "100ms"\npath = "/healthz"') });
  t.after(() => lb.close());
  const admin = adminUrl(lb.lb);
  const scrape = async () => {
    const res = await fetch(`${admin}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /^text\/plain; version=0\.0\.4/);
    return parsePrometheusText(await res.text());
  };
  const b1 = { pool: 'web', backend: backends[0]!.url };
  const b2 = { pool: 'web', backend: backends[1]!.url };

  const before = await scrape();
  assert.equal(sampleValue(before, 'switchyard_requests_total', { ...b1, class: '2xx' }), 0);
  for (const name of ['switchyard_requests_total', 'switchyard_request_failures_total', 'switchyard_backend_active_connections', 'switchyard_backend_up']) {
    assert.ok(before.has(name), `${name} is exported`);
  }
  assert.equal(before.get('switchyard_requests_total')!.type, 'counter');
  assert.equal(before.get('switchyard_request_duration_seconds')!.type, 'histogram');
  assert.equal(sampleValue(before, 'switchyard_config_generation'), 1);
  assert.ok(before.has('process_cpu_user_seconds_total'), 'process metrics too');

  for (let i = 0; i < 10; i++) await (await fetch(`${lb.url}/x`)).text();
  await waitFor('a passing probe of b2', () => backends[1]!.probes > 0, 2000);
  const after = await scrape();
  assert.equal(sampleValue(after, 'switchyard_requests_total', { ...b1, class: '2xx' }), 5);
  assert.equal(sampleValue(after, 'switchyard_requests_total', { ...b2, class: '5xx' }), 5);
  assert.equal(sampleValue(after, 'switchyard_request_duration_seconds_count', b1), 5);
  assert.ok(sampleValue(after, 'switchyard_request_duration_seconds_sum', b1)! > 0);
  assert.equal(sampleValue(after, 'switchyard_backend_active_connections', b1), 0);
  backends[1]!.healthStatus = 503;
  await waitFor('b2 down', () => lb.lb.registry.get(backends[1]!.url)!.state === 'down', 2000);
  const down = await scrape();
  assert.equal(sampleValue(down, 'switchyard_backend_up', b1), 1);
  assert.equal(sampleValue(down, 'switchyard_backend_up', b2), 0);
  assert.equal(sampleValue(down, 'switchyard_backend_state', { ...b2, state: 'down' }), 1);
  assert.ok(sampleValue(down, 'switchyard_health_checks_total', { ...b2, result: 'fail' })! >= 2);
  assert.ok(sampleValue(down, 'switchyard_health_checks_total', { ...b1, result: 'pass' })! >= 1);
  assert.ok(sampleValue(down, 'switchyard_health_check_last_duration_seconds', b1)! > 0);

  // Label values are the configuration's, never the request's path.
  const text = await (await fetch(`${admin}/metrics`)).text();
  assert.doesNotMatch(text, /\/x/);
});

test('/metrics counts reloads, applied and refused, and follows the generation', async (t) => {
  const backends = await startCheckedBackends(1);
  t.after(() => closeAll(backends));
  const lb = await startSwitchyard({ toml: toml(backends, '127.0.0.1:0') });
  t.after(() => lb.close());
  const admin = adminUrl(lb.lb);
  await lb.reload(toml(backends, '127.0.0.1:0', 'max_connections = 10'));
  await assert.rejects(lb.reload(toml(backends, '127.0.0.1:0', 'max_connections = "many"')));
  const metrics = parsePrometheusText(await (await fetch(`${admin}/metrics`)).text());
  assert.equal(sampleValue(metrics, 'switchyard_config_reloads_total', { result: 'success' }), 1);
  assert.equal(sampleValue(metrics, 'switchyard_config_reloads_total', { result: 'failure' }), 1);
  assert.equal(sampleValue(metrics, 'switchyard_config_generation'), 2);
  const status = await getJson(`${admin}/status`);
  assert.equal(status.generation, 2);
  assert.equal(status.reloads.applied, 1);
  assert.equal(status.reloads.refused, 1);
  assert.match(status.reloads.last_refused.problems[0], /lb\.toml:\d+:\d+ pools\.web\.max_connections/);
});

test('a backend shared by two pools is one series whose pool label names both', async (t) => {
  const backends = await startCheckedBackends(2);
  t.after(() => closeAll(backends));
  const [b1, b2] = backends;
  const lb = await startSwitchyard({
    toml: `
[server]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[pools.web]
backends = [{ url = "${b1!.url}" }, { url = "${b2!.url}" }]
[pools.api]
backends = [{ url = "${b2!.url}" }]
[[routes]]
pool = "web"
`,
  });
  t.after(() => lb.close());
  const metrics = parsePrometheusText(await (await fetch(`${adminUrl(lb.lb)}/metrics`)).text());
  const up = metrics.get('switchyard_backend_up')!.samples;
  assert.deepEqual(
    up.map((s) => [s.labels.pool, s.labels.backend]),
    [
      ['web', b1!.url],
      ['web,api', b2!.url],
    ],
  );
});

test('the admin listener is off without [admin], moves when a reload changes its address, and closes on shutdown', async (t) => {
  const backends = await startCheckedBackends(1);
  t.after(() => closeAll(backends));
  const lb = await startSwitchyard({ toml: toml(backends, undefined) });
  t.after(() => lb.close());
  const adminPort = () => lb.lb.adminAddress?.port;
  assert.equal(adminPort(), undefined);

  const first = await freePort();
  await lb.reload(toml(backends, `127.0.0.1:${first}`));
  assert.equal(adminPort(), first);
  assert.equal((await fetch(`http://127.0.0.1:${first}/healthz`)).status, 200);

  // An unchanged [admin] keeps its socket (":0" does not rebind to a new port on every reload).
  await lb.reload(toml(backends, `127.0.0.1:${first}`, '# touched'));
  assert.equal(adminPort(), first);

  const second = await freePort();
  await lb.reload(toml(backends, `127.0.0.1:${second}`));
  assert.equal((await fetch(`http://127.0.0.1:${second}/healthz`)).status, 200);
  await assert.rejects(fetch(`http://127.0.0.1:${first}/healthz`), 'the old address is closed');

  // A reload whose admin address is taken is still applied; the admin API stays where it was.
  const squatter = (await startCheckedBackends(1))[0]!;
  t.after(() => squatter.close());
  await lb.reload(toml(backends, `127.0.0.1:${squatter.port}`, 'max_connections = 7'));
  assert.equal(lb.lb.generation.config.pools.web!.maxConnections, 7);
  assert.equal(adminPort(), second);

  await lb.reload(toml(backends, undefined));
  assert.equal(adminPort(), undefined);
  await assert.rejects(fetch(`http://127.0.0.1:${second}/healthz`));

  await lb.reload(toml(backends, `127.0.0.1:${second}`));
  await lb.close();
  await assert.rejects(fetch(`http://127.0.0.1:${second}/healthz`), 'closed on shutdown');
});

test('the dashboard files are served with their types and a strict CSP', async (t) => {
  const backends = await startCheckedBackends(1);
  t.after(() => closeAll(backends));
  const lb = await startSwitchyard({ toml: toml(backends, '127.0.0.1:0') });
  t.after(() => lb.close());
  const admin = adminUrl(lb.lb);
  const page = await fetch(`${admin}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type')!, /^text\/html/);
  assert.match(page.headers.get('content-security-policy')!, /script-src 'self'/);
  const html = await page.text();
  for (const asset of ['/dashboard.css', '/dashboard.js', '/favicon.svg']) {
    assert.ok(html.includes(asset), `the page links ${asset}`);
    const res = await fetch(`${admin}${asset}`);
    assert.equal(res.status, 200, asset);
    const body = await res.text();
    // Kept as strings in TypeScript: a stray escape would only show in a browser.
    if (asset.endsWith('.js')) assert.doesNotThrow(() => new vm.Script(body, { filename: asset }));
  }
  assert.doesNotMatch(html, /https?:\/\/(?!www\.w3\.org)/, 'no CDN');
});
