/** rate-limit with store = "redis": one limit shared by two instances, over a real redis-server. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startSwitchyard, type RunningSwitchyard } from '../../src/testing.js';
import { startBackend, type TestBackend } from '../helpers/backends.js';
import { request } from '../helpers/http-client.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

function toml(backend: TestBackend, redisUrl: string, extra = ''): string {
  return `
[server]
listen = "127.0.0.1:0"
[pools.web]
backends = [{ url = "${backend.url}" }]
[[pipeline]]
plugin = "rate-limit"
rate = 5
burst = 5
store = "redis"
redis_url = "${redisUrl}"
${extra}
`;
}

test('two instances on different ports share one Redis-backed limit, and survive Redis dying', async () => {
  let redis: TestRedis | undefined;
  let backend: TestBackend | undefined;
  const instances: RunningSwitchyard[] = [];
  const agent = new http.Agent({ keepAlive: true });
  try {
    redis = await startRedis();
    backend = await startBackend('b');
    instances.push(await startSwitchyard({ toml: toml(backend, redis.url) }));
    instances.push(await startSwitchyard({ toml: toml(backend, redis.url) }));
    // Both instances connect before the burst, so none of it fails open.
    await Promise.all(instances.map((lb) => request(lb.url, { agent, headers: { 'x-warmup': '1' } })));
    await new Promise((r) => setTimeout(r, 1100)); // the warm-up took 2 tokens; let the bucket refill (rate 5/s).

    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push((await request(instances[i % 2]!.url, { agent })).status);
    const passed = statuses.filter((s) => s === 200).length;
    assert.ok(passed >= 4 && passed <= 6, `${passed} of 20 passed across both instances: ${statuses.join(',')}`);
    assert.ok(statuses.every((s) => s === 200 || s === 429));

    await redis.kill();
    // Fail open (the default): requests keep being served, neither instance crashes.
    for (let i = 0; i < 6; i++) assert.equal((await request(instances[i % 2]!.url, { agent })).status, 200);
  } finally {
    agent.destroy();
    for (const lb of instances) await lb.close();
    await backend?.close();
    await redis?.kill();
  }
});

test('redis_failure = "closed" refuses requests while Redis is unreachable', async () => {
  let backend: TestBackend | undefined;
  let lb: RunningSwitchyard | undefined;
  let redis: TestRedis | undefined;
  try {
    redis = await startRedis();
    const url = redis.url;
    await redis.kill();
    backend = await startBackend('b');
    lb = await startSwitchyard({ toml: toml(backend, url, 'redis_failure = "closed"\nredis_timeout = "50ms"') });
    const res = await request(lb.url);
    assert.equal(res.status, 429);
    assert.equal(res.headers['retry-after'], '1');
    assert.equal(backend.hits, 0);
  } finally {
    await lb?.close();
    await backend?.close();
    await redis?.kill();
  }
});
