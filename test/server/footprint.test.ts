/**
 * A process loads the libraries its configuration uses, and no others:
 * undici's index (fetch, WebSocket, caches…: 5–6 MB of RSS), its Pool
 * (only Upgrade requests need it), prom-client (the admin API's metrics)
 * and ioredis (the rate limiter's Redis store: 14 MB) are memory a process
 * would pay for without using. Each configuration runs in a child process
 * of its own, whose module cache is the evidence.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { freePort } from '../helpers/backends.js';

const execFileAsync = promisify(execFile);
const TESTING = new URL('../../src/testing.js', import.meta.url).href;

/** Package files that, once in the module cache, mean the whole library was loaded. */
const HEAVY: Readonly<Record<string, RegExp>> = {
  'undici (whole)': /\/node_modules\/undici\/index\.js$/,
  'undici Pool': /\/node_modules\/undici\/lib\/dispatcher\/pool\.js$/,
  'prom-client': /\/node_modules\/prom-client\/index\.js$/,
  ioredis: /\/node_modules\/ioredis\/built\/index\.js$/,
};

/**
 * Starts Switchyard from `toml` (BACKEND replaced by a backend's URL) in a
 * child process, sends one request through it, closes it, and returns
 * which of HEAVY the child had loaded.
 */
async function loadedBy(toml: string): Promise<string[]> {
  const script = `
    import { createRequire } from 'node:module';
    import { startSwitchyard, startBackend } from ${JSON.stringify(TESTING)};
    const backend = await startBackend('b');
    const lb = await startSwitchyard({ toml: process.env.LB_TOML.replace('BACKEND', backend.url) });
    const res = await fetch(lb.url);
    if (res.status !== 200) throw new Error('proxied request answered ' + res.status);
    await res.text();
    const cached = Object.keys(createRequire(import.meta.url).cache);
    await lb.close();
    await backend.close();
    process.stdout.write(JSON.stringify(cached));
  `;
  const { stdout } = await execFileAsync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, LB_TOML: toml },
    timeout: 20_000,
  });
  const cached = JSON.parse(stdout) as string[];
  return Object.keys(HEAVY).filter((name) => cached.some((file) => HEAVY[name]!.test(file)));
}

describe('what a process loads', () => {
  it('a proxy with no admin API and an in-memory rate limiter loads none of them: no undici Pool (Upgrade requests only), no metrics, no Redis client', async () => {
    const loaded = await loadedBy(`[server]
listen = "127.0.0.1:0"
[pools.web]
backends = [{ url = "BACKEND" }]
[[pipeline]]
plugin = "headers"
request.set = { "X-Test" = "1" }
[[pipeline]]
plugin = "retry"
[[pipeline]]
plugin = "rate-limit"
rate = 100
burst = 100
`);
    assert.deepEqual(loaded, []);
  });

  it('an admin API loads prom-client and a Redis store loads ioredis', async () => {
    const [adminPort, deadRedisPort] = [await freePort(), await freePort()];
    const loaded = await loadedBy(`[server]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:${adminPort}"
[pools.web]
backends = [{ url = "BACKEND" }]
[[pipeline]]
plugin = "rate-limit"
rate = 100
burst = 100
store = "redis"
redis_url = "redis://127.0.0.1:${deadRedisPort}"
redis_failure = "open"
`);
    assert.deepEqual(loaded, ['prom-client', 'ioredis']);
  });
});
