/**
 * `[server]` settings that need no new listener apply to the running one on
 * reload: the header size limit (new connections) and the idle timeout.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startSwitchyard } from '../../src/testing.js';
import { startBackend } from '../helpers/backends.js';
import { request } from '../helpers/http-client.js';

test('max_header_size and idle_timeout changed by a reload apply without a rebind', async (t) => {
  const backend = await startBackend('b1');
  const toml = (size: string, idle: string) =>
    `[server]\nlisten = "127.0.0.1:0"\nmax_header_size = "${size}"\nidle_timeout = "${idle}"\n[pools.web]\nbackends = [{ url = "${backend.url}" }]\n`;
  const sy = await startSwitchyard({ toml: toml('16KB', '60s') });
  t.after(async () => {
    await sy.close();
    await backend.close();
  });
  const big = { 'x-big': 'x'.repeat(4000) };
  assert.equal((await request(sy.url, { headers: big })).status, 200);
  const server = sy.lb.generation; // the listener stays; only settings move
  await sy.reload(toml('2KB', '5s'));
  assert.notEqual(sy.lb.generation, server);
  assert.equal((await request(sy.url, { headers: big })).status, 431, 'the smaller limit applies to new connections');
  const agent = new http.Agent({ keepAlive: true });
  try {
    const res = await request(sy.url, { agent });
    assert.equal(res.status, 200);
    assert.equal(res.headers['keep-alive'], 'timeout=5', 'the new idle timeout is announced');
  } finally {
    agent.destroy();
  }
  assert.equal(sy.lb.address.port, sy.port, 'same listener');
  assert.deepEqual(sy.lb.reloads.lastApplied?.changes.settings, ['server.max_header_size', 'server.idle_timeout']);
});
