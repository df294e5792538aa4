/**
 * bin/lb, the command npm installs as `lb`: it execs node (same process, so
 * signals and exit codes are node's own) with --max-semi-space-size=8, or
 * with LB_NODE_FLAGS instead when that is set (empty: no flags), and with
 * glibc's heap trimming held back (MALLOC_TRIM_THRESHOLD_, MALLOC_TOP_PAD_)
 * unless those are set already.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBackend } from '../helpers/backends.js';
import { startLb } from '../helpers/lb-process.js';

/** The node flags of a running node process, from /proc (Linux). */
function nodeFlags(pid: number): string[] {
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0');
  // Up to the script: cli.js for lb, worker-main.js for a worker.
  return argv.slice(1, argv.findIndex((a) => a.endsWith('.js')));
}

/** The two glibc malloc settings bin/lb sets, as a running process's environment has them (Linux). */
function mallocSettings(pid: number): Record<string, string> {
  const pairs = readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
  const wanted = pairs.filter((p) => p.startsWith('MALLOC_TRIM_THRESHOLD_=') || p.startsWith('MALLOC_TOP_PAD_='));
  return Object.fromEntries(wanted.map((p) => p.split(/=(.*)/s).slice(0, 2)));
}

const DEFAULT_MALLOC = { MALLOC_TRIM_THRESHOLD_: '33554432', MALLOC_TOP_PAD_: '8388608' };

describe('bin/lb', () => {
  it('runs lb in the same process, with its default node flag, and serves', async () => {
    const backend = await startBackend('b');
    const dir = await mkdtemp(join(tmpdir(), 'lb-bin-'));
    const file = join(dir, 'lb.toml');
    await writeFile(file, `[server]\nlisten = "127.0.0.1:0"\n[pools.web]\nbackends = [{ url = "${backend.url}" }]\n`);
    const lb = await startLb(file, ['--no-watch'], { viaBin: true });
    try {
      const argv0 = readFileSync(`/proc/${lb.child.pid}/cmdline`, 'latin1').split('\0')[0]!;
      assert.match(argv0, /node$/, 'exec: the pid we spawned is node itself, not sh');
      assert.deepEqual(nodeFlags(lb.child.pid!), ['--max-semi-space-size=8']);
      assert.deepEqual(mallocSettings(lb.child.pid!), DEFAULT_MALLOC);
      const res = await fetch(lb.url);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), 'b');
    } finally {
      await lb.stop();
      await backend.close();
      await rm(dir, { recursive: true, force: true });
    }
    assert.equal(lb.child.exitCode, 0, 'SIGTERM reached node: a graceful exit');
  });

  it('LB_NODE_FLAGS replaces the default flag; set but empty, it means none', async () => {
    const backend = await startBackend('b');
    const dir = await mkdtemp(join(tmpdir(), 'lb-bin-'));
    const file = join(dir, 'lb.toml');
    await writeFile(file, `[server]\nlisten = "127.0.0.1:0"\n[pools.web]\nbackends = [{ url = "${backend.url}" }]\n`);
    try {
      for (const [value, expected] of [
        ['', []],
        ['--max-semi-space-size=4 --no-warnings', ['--max-semi-space-size=4', '--no-warnings']],
      ] as const) {
        const lb = await startLb(file, ['--no-watch'], { viaBin: true, env: { LB_NODE_FLAGS: value } });
        try {
          assert.deepEqual(nodeFlags(lb.child.pid!), expected);
        } finally {
          await lb.stop();
        }
      }
    } finally {
      await backend.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a malloc setting already in the environment is kept', async () => {
    const backend = await startBackend('b');
    const dir = await mkdtemp(join(tmpdir(), 'lb-bin-'));
    const file = join(dir, 'lb.toml');
    await writeFile(file, `[server]\nlisten = "127.0.0.1:0"\n[pools.web]\nbackends = [{ url = "${backend.url}" }]\n`);
    const lb = await startLb(file, ['--no-watch'], { viaBin: true, env: { MALLOC_TRIM_THRESHOLD_: '131072' } });
    try {
      assert.deepEqual(mallocSettings(lb.child.pid!), { MALLOC_TRIM_THRESHOLD_: '131072', MALLOC_TOP_PAD_: '8388608' });
    } finally {
      await lb.stop();
      await backend.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('workers run with the same node flags and malloc settings as the primary', async () => {
    const backend = await startBackend('b');
    const dir = await mkdtemp(join(tmpdir(), 'lb-bin-'));
    const file = join(dir, 'lb.toml');
    await writeFile(file, `[server]\nlisten = "127.0.0.1:0"\nworkers = 2\n[pools.web]\nbackends = [{ url = "${backend.url}" }]\n`);
    const lb = await startLb(file, ['--no-watch'], { viaBin: true });
    try {
      const res = await fetch(lb.url);
      assert.equal(res.status, 200);
      await res.text();
      // The primary logs its workers' pids once all of them serve.
      const workers = lb.logs.find((l) => Array.isArray(l.pids))?.pids as number[] | undefined;
      assert.equal(workers?.length, 2, 'two worker processes');
      for (const pid of workers!) {
        assert.deepEqual(nodeFlags(pid), ['--max-semi-space-size=8'], `worker ${pid}`);
        assert.deepEqual(mallocSettings(pid), DEFAULT_MALLOC, `worker ${pid}`);
      }
    } finally {
      await lb.stop();
      await backend.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
