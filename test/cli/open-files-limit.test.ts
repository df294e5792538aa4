/**
 * `lb run` under a low open-files limit (ulimit -n 256) with no
 * server.max_connections: the default client connection limit, derived from
 * the open-files limit, keeps descriptors free for the health checks. 400
 * idle clients get the listener's share and no more; the backend is never
 * taken out with EMFILE (an overload must not become an outage), and a
 * request is served as soon as a slot frees.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBackend } from '../helpers/backends.js';
import { holdFirstAdmitted, openIdle, releaseAll, type HeldConnection } from '../helpers/held-connections.js';
import { startLb, type LbProcess } from '../helpers/lb-process.js';
import { within } from '../helpers/waiting.js';

const OPEN_FILES = 256;
/** floor((256 - 64) / 2): client-connection-limit.ts. */
const DERIVED_LIMIT = 96;
const IDLE_CLIENTS = 400;
/** Probes that must pass while the idle clients are held: 20 intervals of 100 ms, 10 times unhealthy_after. */
const PROBES_WHILE_HELD = 20;

test(`ulimit -n ${OPEN_FILES}: ${IDLE_CLIENTS} idle clients never take the health checks' descriptors`, { skip: process.platform !== 'linux' && 'the default is derived on Linux only', timeout: 30_000 }, async (t) => {
  let probes = 0;
  let probed = () => {};
  const backend = await startBackend('b1', (req, res) => {
    if (req.url === '/healthz') {
      probes++;
      probed();
    }
    res.end('b1');
  });
  const dir = await mkdtemp(join(tmpdir(), 'lb-nofile-'));
  const file = join(dir, 'lb.toml');
  let lb: LbProcess | undefined;
  const held: HeldConnection[] = [];
  t.after(async () => {
    await releaseAll(held);
    await lb?.stop();
    await backend.close();
    await rm(dir, { recursive: true, force: true });
  });
  await writeFile(
    file,
    `[server]
listen = "127.0.0.1:0"
[pools.web]
backends = [{ url = "${backend.url}" }]
[pools.web.health]
checker = "http"
path = "/healthz"
interval = "100ms"
timeout = "1s"
unhealthy_after = 2
`,
  );
  lb = await startLb(file, ['--no-watch'], { openFilesLimit: OPEN_FILES });
  const started = await lb.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('accepting'), 5000);
  assert.equal(started.msg, `accepting at most ${DERIVED_LIMIT} client connections (half of the open-files limit ${OPEN_FILES}; set server.max_connections to choose)`);
  await lb.waitForLog((l) => / → up /.test(l.msg), 5000);

  await openIdle(lb.port, IDLE_CLIENTS, held);
  const goneDown = lb.waitForLog((l) => / → down /.test(l.msg), 15_000).then(
    (line) => line.msg,
    () => undefined,
  );
  const probedWhileHeld = new Promise<void>((resolve) => {
    const from = probes;
    probed = () => {
      if (probes - from >= PROBES_WHILE_HELD) resolve();
    };
  });
  const outcome = await within(Promise.race([goneDown, probedWhileHeld.then(() => 'probed' as const)]), 15_000, `fewer than ${PROBES_WHILE_HELD} probes in 15 s`);
  assert.equal(outcome, 'probed', `the backend went down while idle clients were held: ${outcome}`);
  assert.ok(!lb.logs.some((l) => / → down /.test(l.msg)), 'no up → down in the log');

  const refusal = await lb.waitForLog((l) => l.level === 40 && l.maxConnections === DERIVED_LIMIT, 2000);
  assert.match(refusal.msg, /half of the open-files limit 256/);
  const open = held.filter((c) => !c.closed);
  assert.ok(open.length <= DERIVED_LIMIT, `${open.length} idle clients still open, at most ${DERIVED_LIMIT} expected`);

  // A slot frees: the next client is served.
  open[0]!.socket.destroy();
  await open[0]!.whenClosed;
  const next = await holdFirstAdmitted(lb.port);
  held.push(next.connection);
  assert.equal(next.connection.status, 200);
});
