/**
 * The admin listener under the real CLI (`lb run` as a child process): it
 * answers while the proxy runs, follows a saved lb.toml to a new address,
 * and is gone once SIGTERM has shut the process down.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../helpers/backends.js';
import { closeAll, getJson, startCheckedBackends, waitFor } from '../health/support.js';

const cli = new URL('../../src/cli.js', import.meta.url).pathname;

async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(url);
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

test('lb run: /healthz answers, a saved [admin] listen moves it, SIGTERM closes it', { timeout: 30_000 }, async (t) => {
  const backends = await startCheckedBackends(1);
  t.after(() => closeAll(backends));
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-admin-cli-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // Free a moment ago, not reserved: under load another process may take one, and lb's output then says so.
  const [first, second] = [await freePort(), await freePort()];
  const file = join(dir, 'lb.toml');
  const toml = (admin: number, interval: string) => `
[server]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:${admin}"
[pools.web]
backends = [{ url = "${backends[0]!.url}" }]
[pools.web.health]
checker = "http"
path = "/healthz"
interval = "${interval}"
`;
  await writeFile(file, toml(first, '100ms'));
  const child = spawn(process.execPath, [cli, 'run', '-c', file, '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d));
  child.stderr.on('data', (d: Buffer) => (output += d));
  const exited = once(child, 'exit');
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  /** Until `url` answers; failing at once if lb exits, and with what lb said either way. */
  const adminAnswers = async (what: string, url: string) => {
    try {
      await waitFor(what, () => {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`lb exited (${child.exitCode ?? child.signalCode})`);
        return answers(url);
      }, 10_000, 50);
    } catch (err) {
      throw new Error(`${(err as Error).message}; lb's output:\n${output}`);
    }
  };

  await adminAnswers('the admin API', `http://127.0.0.1:${first}/healthz`);
  const status = await waitFor('the backend checked up', async () => {
    const s = await getJson(`http://127.0.0.1:${first}/status`);
    return s.pools.web.backends[0].state === 'up' && s;
  }, 5000);
  assert.equal(status.pools.web.health.interval_ms, 100);

  await writeFile(file, toml(second, '200ms'));
  await adminAnswers('the admin API on its new address', `http://127.0.0.1:${second}/healthz`);
  assert.equal(await answers(`http://127.0.0.1:${first}/healthz`), false, 'the old address is closed');
  const reloaded = await getJson(`http://127.0.0.1:${second}/status`);
  assert.equal(reloaded.generation, 2);
  assert.equal(reloaded.pools.web.health.interval_ms, 200);
  assert.equal(reloaded.pools.web.backends[0].state, 'up', 'the backend kept its state across the reload');

  child.kill('SIGTERM');
  const [code] = await exited;
  assert.equal(code, 0, output);
  assert.equal(await answers(`http://127.0.0.1:${second}/healthz`), false);
});
