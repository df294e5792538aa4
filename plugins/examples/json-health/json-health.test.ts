/**
 * json-health's own test: the verdict on a body, then the checker taking a
 * real backend out of rotation and back through `switchyard/testing`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { startBackend, startSwitchyard } from 'switchyard/testing';
import { judgeHealthBody } from './index.js';

const PLUGIN = fileURLToPath(new URL('./index.js', import.meta.url));

test('judgeHealthBody', () => {
  const rows = [
    { desc: 'ok', body: { status: 'ok' }, expect: { healthy: true, reason: 'status is ok' } },
    { desc: 'other value', body: { status: 'draining' }, expect: { healthy: false, reason: 'status is "draining"' } },
    { desc: 'missing', body: { up: true }, expect: { healthy: false, reason: 'no "status" in the answer' } },
    { desc: 'not an object', body: 'ok', expect: { healthy: false, reason: 'no "status" in the answer' } },
  ];
  for (const { desc, body, expect } of rows) assert.deepEqual(judgeHealthBody(body, 'status', 'ok'), expect, desc);
});

test('a backend that reports "draining" leaves rotation with that reason, and returns when it reports ok', async (t) => {
  let status = 'ok';
  const backend = await startBackend('b1', (req, res) => {
    if (req.url === '/health') res.setHeader('content-type', 'application/json').end(JSON.stringify({ status }));
    else res.end('b1');
  });
  const lb = await startSwitchyard({
    toml: `
      [server]
      listen = "127.0.0.1:0"
      [pools.web]
      backends = [{ url = "${backend.url}" }]
      [pools.web.health]
      checker = "${PLUGIN}"
      interval = "100ms"
      timeout = "500ms"
      unhealthy_after = 1
      healthy_after = 1
    `,
  });
  t.after(async () => {
    await lb.close();
    await backend.close();
  });
  const until = async (expected: number) => {
    const deadline = Date.now() + 3000;
    let last = 0;
    while (Date.now() < deadline) {
      const res = await fetch(lb.url);
      await res.text();
      last = res.status;
      if (last === expected) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.fail(`still ${last}, expected ${expected}`);
  };
  await until(200);
  status = 'draining';
  await until(503);
  assert.equal(lb.lb.registry.get(backend.url)?.reason, 'status is "draining"');
  status = 'ok';
  await until(200);
});
