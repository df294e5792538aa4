/**
 * Durations end up in Node timers, which cannot wait past 2^31−1 ms (a
 * longer delay fires after 1 ms). Through the real CLI: `lb run` refuses a
 * duration past the bound at its line, and honours the longest it accepts.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBackend, type TestBackend } from '../../src/testing.js';
import { request } from '../helpers/http-client.js';
import { runLb, startLb, type LbProcess } from '../helpers/lb-process.js';

describe('duration bounds (lb run)', () => {
  let backend: TestBackend;
  let dir: string;
  let probes = 0;
  let firstProbe: () => void;
  const probed = new Promise<void>((resolve) => (firstProbe = resolve));
  let slowArrived: () => void;
  const slowReceived = new Promise<void>((resolve) => (slowArrived = resolve));
  const running: LbProcess[] = [];

  /** `promise`, or a rejection naming `what` after `ms`. */
  function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms)));
    return Promise.race([promise, late]).finally(() => clearTimeout(timer));
  }

  before(async () => {
    backend = await startBackend('b', (req, res) => {
      if (req.url === '/healthz') {
        probes++;
        firstProbe();
        res.end('ok');
      } else if (req.url === '/slow') {
        slowArrived();
        setTimeout(() => res.end('slow done'), 300);
      } else res.end('fast');
    });
    dir = await mkdtemp(join(tmpdir(), 'switchyard-timer-bounds-'));
  });
  after(async () => {
    for (const lb of running) await lb.stop();
    await backend?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a health interval of 1000h at its line instead of probing every millisecond (exit 1, never listens)', async () => {
    const file = join(dir, 'too-long.toml');
    await writeFile(file, `[server]\nlisten = "127.0.0.1:0"\n[pools.web]\nbackends = [{ url = "${backend.url}" }]\n[pools.web.health]\ninterval = "1000h"\n`);
    const res = await runLb(['run', '-c', file, '--no-watch']);
    assert.equal(res.code, 1, res.stdout + res.stderr);
    assert.match(res.stderr, new RegExp(`^${file}:6:1 pools\\.web\\.health\\.interval: must be at most "500h"`, 'm'));
    assert.doesNotMatch(res.stdout + res.stderr, /listening/);
  });

  it('honours the longest durations it accepts: one probe, no timer overflow, a graceful shutdown that waits', async () => {
    const file = join(dir, 'longest.toml');
    await writeFile(
      file,
      `[server]
listen = "127.0.0.1:0"
headers_timeout = "500h"
body_timeout = "500h"
idle_timeout = "500h"
shutdown_grace = "500h"
[pools.web]
connect_timeout = "500h"
response_timeout = "500h"
passive_cooldown = "500h"
backends = [{ url = "${backend.url}" }]
[pools.web.health]
interval = "500h"
timeout = "500h"
`,
    );
    const lb = await startLb(file, ['--no-watch', '--log-level', 'info']);
    running.push(lb);
    // The first probe of a new backend comes within a second.
    await within(probed, 5000, 'the first health probe');
    // An overflowed interval would probe again within a millisecond: 300 ms of
    // silence is the evidence that it did not.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(probes, 1, 'one probe per 500h interval');

    const slow = request(`${lb.url}/slow`);
    await within(slowReceived, 5000, 'the request reaching the backend');
    const exit = once(lb.child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    lb.child.kill('SIGTERM');
    const res = await slow;
    assert.equal(res.status, 200, 'the in-flight request finished within shutdown_grace');
    assert.equal(res.body, 'slow done');
    assert.deepEqual(await within(exit, 5000, 'the exit after the in-flight request'), [0, null]);
    assert.deepEqual(lb.text.filter((line) => /TimeoutOverflowWarning/.test(line)), []);
  });
});
