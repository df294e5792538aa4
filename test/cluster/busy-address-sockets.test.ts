/**
 * With `workers = 2`, saves moving `server.listen` to an address another
 * process holds are refused — and leave no socket behind. Node's cluster
 * (SCHED_NONE) used to keep the handle of each failed bind open in the
 * primary and in every worker, one more per refused save, for good.
 * Real CLI; sockets counted in /proc/PID/fd of every process.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readlink } from 'node:fs/promises';
import net from 'node:net';
import { freePort, startBackends } from '../helpers/backends.js';
import { backendList, clusterHead, startCluster } from './support.js';

const NOT_APPLIED = /^configuration not applied/;

/** Open socket descriptors of process `pid` (TCP, Unix, IPC alike). */
async function socketsOf(pid: number): Promise<number> {
  let count = 0;
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    try {
      if ((await readlink(`/proc/${pid}/fd/${fd}`)).startsWith('socket:')) count++;
    } catch {
      // Closed between the listing and the read.
    }
  }
  return count;
}

test('saves moving server.listen to a busy address, refused five times: the primary and the workers hold no more sockets than before', { skip: process.platform !== 'linux' && 'reads /proc' }, async (t) => {
  const backends = await startBackends(1);
  t.after(() => Promise.all(backends.map((b) => b.close())).then(() => {}));
  const toml = (port: number, note: number) => `${clusterHead(port)}
[pools.web]
backends = ${backendList(backends)}
# save ${note}
`;
  const cluster = await startCluster(t, (port) => toml(port, 0));
  const blocker = net.createServer();
  const busy = await freePort();
  await new Promise<void>((resolve) => blocker.listen(busy, '127.0.0.1', () => resolve()));
  t.after(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  const started = await cluster.lb.waitForLog((l) => Array.isArray(l.pids), 1000);
  const pids = [cluster.lb.child.pid!, ...(started.pids as number[])];
  const before = await Promise.all(pids.map(socketsOf));

  for (let save = 1; save <= 5; save++) {
    const from = cluster.lb.logs.length;
    await cluster.save(toml(busy, save));
    const refused = await cluster.lb.waitForLog((l) => NOT_APPLIED.test(l.msg), 5000, from);
    assert.match(refused.msg, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${busy}: .*EADDRINUSE`));
  }

  const after = await Promise.all(pids.map(socketsOf));
  assert.deepEqual(after, before, `sockets of the primary and workers ${pids.join(', ')}: before ${before.join(', ')}, after five refused saves ${after.join(', ')}`);
});
