/**
 * `lb run` when an address it must listen on is taken: one line naming the
 * key to change and what to do, exit 2, no stack trace, nothing left running.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../helpers/backends.js';
import { runLb } from '../helpers/lb-process.js';

const rows = [
  { desc: 'the traffic port', key: 'server.listen' },
  { desc: 'the admin port', key: 'admin.listen' },
] as const;

for (const row of rows) {
  test(`lb run: ${row.desc} taken by another process → "${row.key}: cannot listen …", exit 2`, async (t) => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => taken.close(() => resolve())));
    const takenPort = (taken.address() as AddressInfo).port;
    const [trafficPort, adminPort] = row.key === 'server.listen' ? [takenPort, await freePort()] : [await freePort(), takenPort];
    const dir = await mkdtemp(join(tmpdir(), 'lb-listen-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'lb.toml');
    await writeFile(
      file,
      `[server]\nlisten = "127.0.0.1:${trafficPort}"\n[admin]\nlisten = "127.0.0.1:${adminPort}"\n[pools.web]\nbackends = [{ url = "http://127.0.0.1:9" }]\n`,
    );

    const res = await runLb(['run', '--no-watch', '-c', file]);
    assert.equal(res.code, 2, res.stderr);
    assert.equal(
      res.stderr,
      `${file}: ${row.key}: cannot listen on 127.0.0.1:${takenPort}: another process is already listening there (EADDRINUSE); stop it, or choose another port in ${row.key}\n`,
    );
  });
}
