/** rate-limit with store = "redis": one limit shared by two instances, over a real redis-server. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import net from 'node:net';
import { Redis } from 'ioredis';
import type { Logger } from '../../src/index.js';
import { RECOVERY_MS, RedisBucketStore } from '../../plugins/rate-limit/redis-store.js';
import { startSwitchyard, type RunningSwitchyard } from '../../src/testing.js';
import { freePort, startBackend, type TestBackend } from '../helpers/backends.js';
import { request } from '../helpers/http-client.js';
import { runLb } from '../helpers/lb-process.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

function toml(backend: TestBackend, redisUrl: string, extra = '', rate = 5): string {
  return `
[server]
listen = "127.0.0.1:0"
[pools.web]
backends = [{ url = "${backend.url}" }]
[[pipeline]]
plugin = "rate-limit"
rate = ${rate}
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
    // A token per minute: the 20 pass what the shared bucket of 5 holds, however
    // long a loaded machine takes over them (at 5/s, 300 ms of it passed a 7th).
    const rate = 1 / 60;
    instances.push(await startSwitchyard({ toml: toml(backend, redis.url, '', rate) }));
    instances.push(await startSwitchyard({ toml: toml(backend, redis.url, '', rate) }));
    // Both instances connect before the burst, so none of it fails open. Each
    // warm-up takes a token, or none if it came before the connection (failing open).
    await Promise.all(instances.map((lb) => request(lb.url, { agent, headers: { 'x-warmup': '1' } })));

    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push((await request(instances[i % 2]!.url, { agent })).status);
    const passed = statuses.filter((s) => s === 200).length;
    // One bucket per instance instead of one shared would pass 8 to 10.
    assert.ok(passed >= 3 && passed <= 5, `${passed} of 20 passed across both instances: ${statuses.join(',')}`);
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

/** A logger that keeps "level: message" lines. */
function recordingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (obj: object | string, msg?: string) => lines.push(`${level}: ${msg ?? String(obj)}`);
  return { logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }, lines };
}

/** Takes tokens until Redis answers one with `allowed` (the store fails closed meanwhile); bounded. */
async function untilAnswered(store: RedisBucketStore, key: string): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    if ((await store.take(key)).allowed) return;
    // Failing closed takes no time while the client is still connecting: give it a moment.
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('Redis did not answer within 100 attempts');
}

/** Takes tokens back to back for `ms`, every one answered by Redis. */
async function answeredFor(store: RedisBucketStore, key: string, ms: number): Promise<void> {
  const started = Date.now();
  while (Date.now() - started < ms) {
    assert.equal((await store.take(key)).allowed, true);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Token-taking scripts Redis has run so far (INFO commandstats). */
async function scriptCalls(url: string): Promise<number> {
  const client = new Redis(url);
  try {
    const info = await client.info('commandstats');
    let calls = 0;
    for (const m of info.matchAll(/^cmdstat_(?:eval|evalsha):calls=(\d+)/gm)) calls += Number(m[1]);
    return calls;
  } finally {
    client.disconnect();
  }
}

test('a fractional rate refills exactly however often a key asks (0.9 tokens/s, asked back to back for 2.7 s: 3 allowed)', async () => {
  let redis: TestRedis | undefined;
  let store: RedisBucketStore | undefined;
  try {
    redis = await startRedis();
    const { logger } = recordingLogger();
    store = new RedisBucketStore({ url: redis.url, rate: 0.9, burst: 1, failure: 'closed', timeoutMs: 1000, keyPrefix: 'test:fractional:', logger });
    await untilAnswered(store, 'warm-up');
    // Back to back, each request comes well under 1.1 ms (the time 0.9/s takes
    // to make a thousandth of a token) after the one before: a refill rounded
    // per request to whole thousandths would never give this key a token back.
    let allowed = 0;
    let asked = 0;
    const started = Date.now();
    while (Date.now() - started < 2700) {
      const decision = await store.take('client');
      asked++;
      if (decision.allowed) allowed++;
      else assert.ok(decision.retryAfterMs > 0 && decision.retryAfterMs <= 1112, `retry after ${decision.retryAfterMs} ms`);
    }
    // The full bucket's one token, then one every 1.11 s: at 1.11 s and 2.22 s.
    assert.equal(allowed, 3, `${allowed} of ${asked} requests allowed`);
  } finally {
    await store?.close();
    await redis?.kill();
  }
});

test('a Redis that stalls (SIGSTOP) and resumes: the outage is logged once, its end once, and the next outage again', async () => {
  let redis: TestRedis | undefined;
  let store: RedisBucketStore | undefined;
  try {
    redis = await startRedis();
    const { logger, lines } = recordingLogger();
    store = new RedisBucketStore({ url: redis.url, rate: 1000, burst: 1000, failure: 'closed', timeoutMs: 100, keyPrefix: 'test:stall:', logger });
    await store.connected(5000);
    await untilAnswered(store, 'client');
    lines.length = 0;

    redis.process.kill('SIGSTOP');
    for (let i = 0; i < 3; i++) assert.equal((await store.take('client')).allowed, false, 'fails closed while Redis is stopped');
    assert.deepEqual(lines, [`warn: rate-limit: Redis at ${redis.url} is unavailable (Command timed out); failing closed until it is back`]);

    // The connection stayed up all along: only answered commands can tell it is back.
    redis.process.kill('SIGCONT');
    await untilAnswered(store, 'client');
    assert.equal(lines.length, 1, 'not over at the first answer');
    await answeredFor(store, 'client', RECOVERY_MS + 100);
    assert.equal(lines.length, 2, lines.join('\n'));
    assert.equal(lines[1], `info: rate-limit: Redis at ${redis.url} is reachable again`);
    assert.equal((await store.take('client')).allowed, true);
    assert.equal(lines.length, 2, 'logged once');

    await redis.kill();
    assert.equal((await store.take('client')).allowed, false);
    assert.equal((await store.take('client')).allowed, false);
    assert.equal(lines.length, 3, lines.join('\n'));
    assert.match(lines[2]!, /^warn: rate-limit: Redis at .* is unavailable \(.+\); failing closed until it is back$/);
  } finally {
    await store?.close();
    await redis?.kill();
  }
});

test('a password in redis_url is never logged', async () => {
  let backend: TestBackend | undefined;
  let lb: RunningSwitchyard | undefined;
  let redis: TestRedis | undefined;
  try {
    redis = await startRedis();
    const url = `redis://:Pa55word@127.0.0.1:${redis.port}`;
    await redis.kill();
    backend = await startBackend('b');
    lb = await startSwitchyard({ toml: toml(backend, url, 'redis_timeout = "50ms"'), captureLogs: true });
    assert.equal((await request(lb.url)).status, 200);
    const outage = lb.logs.filter((l) => /is unavailable/.test(l.msg));
    assert.equal(outage.length, 1);
    assert.equal(outage[0]!.redis, `redis://:***@127.0.0.1:${redis.port}`);
    assert.deepEqual(lb.logs.filter((l) => JSON.stringify(l).includes('Pa55word')), []);
  } finally {
    await lb?.close();
    await backend?.close();
    await redis?.kill();
  }
});

test('the first requests after start get Redis\'s answer, not a failure while it connects', async () => {
  let redis: TestRedis | undefined;
  let backend: TestBackend | undefined;
  let lb: RunningSwitchyard | undefined;
  try {
    redis = await startRedis();
    backend = await startBackend('b');
    lb = await startSwitchyard({ toml: toml(backend, redis.url, 'redis_failure = "closed"'), captureLogs: true });
    const statuses = await Promise.all([request(lb.url), request(lb.url), request(lb.url)]);
    assert.deepEqual(statuses.map((r) => r.status), [200, 200, 200]);
    assert.deepEqual(lb.logs.filter((l) => /Redis/.test(l.msg)).map((l) => l.msg), []);
  } finally {
    await lb?.close();
    await backend?.close();
    await redis?.kill();
  }
});

test('a stalled Redis is sent one command at a time: requests meanwhile fail at once and pile up nothing', async () => {
  let redis: TestRedis | undefined;
  let store: RedisBucketStore | undefined;
  try {
    redis = await startRedis();
    const { logger } = recordingLogger();
    store = new RedisBucketStore({ url: redis.url, rate: 1000, burst: 1000, failure: 'closed', timeoutMs: 100, keyPrefix: 'test:pile:', logger });
    await untilAnswered(store, 'client');
    const before = await scriptCalls(redis.url);

    redis.process.kill('SIGSTOP');
    assert.equal((await store.take('client')).allowed, false, 'timed out');
    const started = Date.now();
    for (let i = 0; i < 200; i++) assert.equal((await store.take('client')).allowed, false);
    const took = Date.now() - started;

    redis.process.kill('SIGCONT');
    await untilAnswered(store, 'client');
    // The stalled command, then the one that answered: none of the 200 was ever sent.
    const sent = (await scriptCalls(redis.url)) - before;
    assert.ok(sent <= 3, `${sent} commands reached Redis for 202 decisions`);
    assert.ok(took < 100, `200 decisions took ${took} ms: none waited for the timeout`);
  } finally {
    await store?.close();
    await redis?.kill();
  }
});

test('a Redis that answers some commands in time and not others is one outage in the log, not one per flap', async () => {
  let redis: TestRedis | undefined;
  let store: RedisBucketStore | undefined;
  try {
    redis = await startRedis();
    const { logger, lines } = recordingLogger();
    store = new RedisBucketStore({ url: redis.url, rate: 1000, burst: 1000, failure: 'open', timeoutMs: 50, keyPrefix: 'test:flap:', logger });
    await store.connected(5000);
    await answeredFor(store, 'client', 50);
    for (let flap = 0; flap < 5; flap++) {
      redis.process.kill('SIGSTOP');
      await store.take('client');
      redis.process.kill('SIGCONT');
      await new Promise((r) => setTimeout(r, 20));
      await answeredFor(store, 'client', 60);
    }
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.match(lines[0]!, /^warn: rate-limit: Redis at .* is unavailable \(Command timed out\)/);
    await answeredFor(store, 'client', RECOVERY_MS + 100);
    assert.deepEqual(lines.slice(1), [`info: rate-limit: Redis at ${redis.url} is reachable again`]);
  } finally {
    await store?.close();
    await redis?.kill();
  }
});

/**
 * A TCP relay to Redis whose open connections can be silenced, as when a
 * route is lost without a reset: nothing passes either way, the sockets
 * stay up. Connections made afterwards relay normally.
 */
async function startRelay(redisPort: number): Promise<{ url: string; silence(): void; close(): Promise<void> }> {
  const pairs = new Set<[net.Socket, net.Socket]>();
  const server = net.createServer((client) => {
    const upstream = net.connect(redisPort, '127.0.0.1');
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `redis://127.0.0.1:${port}`,
    silence() {
      for (const [client, upstream] of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
      }
    },
    async close() {
      for (const [client, upstream] of pairs) {
        client.destroy();
        upstream.destroy();
      }
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

test('a connection whose Redis went silent without a reset is replaced, and decisions come from Redis again', async () => {
  let redis: TestRedis | undefined;
  let relay: Awaited<ReturnType<typeof startRelay>> | undefined;
  let store: RedisBucketStore | undefined;
  try {
    redis = await startRedis();
    relay = await startRelay(redis.port);
    const { logger, lines } = recordingLogger();
    store = new RedisBucketStore({ url: relay.url, rate: 1000, burst: 1000, failure: 'closed', timeoutMs: 100, stuckMs: 500, keyPrefix: 'test:silent:', logger });
    await store.connected(5000);
    await untilAnswered(store, 'client');

    relay.silence();
    assert.equal((await store.take('client')).allowed, false, 'timed out on the silent connection');
    // The silent connection would hold its command for as long as TCP retransmits.
    await untilAnswered(store, 'client');
    assert.ok(
      lines.some((l) => /left a command unanswered for 500 ms; reconnecting/.test(l)),
      lines.join('\n'),
    );
  } finally {
    await store?.close();
    await relay?.close();
    await redis?.kill();
  }
});

test('lb run refuses a redis_url naming a database the Redis does not have, at its pipeline entry, instead of using database 0', async () => {
  let redis: TestRedis | undefined;
  let backend: TestBackend | undefined;
  const dir = await mkdtemp(join(tmpdir(), 'lb-redis-db-'));
  try {
    redis = await startRedis();
    backend = await startBackend('b');
    const file = join(dir, 'lb.toml');
    await writeFile(file, toml(backend, `${redis.url}/99`));
    const { code, stderr } = await runLb(['run', '-c', file]);
    assert.equal(code, 1, stderr);
    assert.match(
      stderr,
      new RegExp(`lb\\.toml:7:1 pipeline\\[0\\]\\.plugin: plugin "rate-limit" failed to start: Redis at redis://127\\.0\\.0\\.1:${redis.port}/99 has no database 99 \\(ERR DB index is out of range\\); choose one it has in redis_url`),
    );
    assert.equal(backend.hits, 0);
  } finally {
    await backend?.close();
    await redis?.kill();
    await rm(dir, { recursive: true, force: true });
  }
});

/** Waits (at most 5 s) until a client other than the one asking is connected to Redis at `url`. */
async function untilConnected(url: string, lines: readonly string[]): Promise<void> {
  const client = new Redis(url);
  try {
    const deadline = Date.now() + 5000;
    while (!/^connected_clients:([2-9]|\d\d)/m.test(await client.info('clients'))) {
      assert.ok(Date.now() < deadline, `the store did not connect within 5 s:\n${lines.join('\n')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    client.disconnect();
  }
}

test('a Redis reached only later that lacks the configured database: every decision is the configured failure, database 0 is never written, and a Redis that has it is used', async () => {
  let redis: TestRedis | undefined;
  let store: RedisBucketStore | undefined;
  const port = await freePort();
  try {
    const { logger, lines } = recordingLogger();
    // Nothing listens yet: the start goes on, failing closed.
    store = new RedisBucketStore({ url: `redis://127.0.0.1:${port}/3`, rate: 1000, burst: 1000, failure: 'closed', timeoutMs: 50, keyPrefix: 'test:db:', logger });
    await store.connected(100);
    assert.equal((await store.take('client')).allowed, false);

    redis = await startRedis({ port, args: ['--databases', '2'] });
    await untilConnected(redis.url, lines);
    for (let i = 0; i < 5; i++) assert.equal((await store.take('client')).allowed, false);
    assert.equal(await scriptCalls(redis.url), 0, 'no token was taken in another database');
    assert.equal(lines.filter((l) => /has no database 3/.test(l)).length, 1, lines.join('\n'));

    await redis.kill();
    redis = await startRedis({ port });
    await untilAnswered(store, 'client');
    const client = new Redis(`${redis.url}/3`);
    try {
      assert.equal(await client.exists('test:db:client'), 1, 'the bucket is in database 3');
    } finally {
      client.disconnect();
    }
  } finally {
    await store?.close();
    await redis?.kill();
  }
});
