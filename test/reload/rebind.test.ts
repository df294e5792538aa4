/**
 * Changing `server.listen` in a running `lb run`: the new listener is bound
 * first, the old one stops accepting at once and its connections finish; a
 * bind that fails keeps the old listener (and generation) and says why.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startBackend } from '../helpers/backends.js';
import { request } from '../helpers/http-client.js';
import { startLb, type LbProcess } from '../helpers/lb-process.js';

function toml(listen: string, backend: string): string {
  return `[server]\nlisten = "${listen}"\n\n[pools.web]\nbackends = [{ url = "${backend}" }]\n`;
}

test('server.listen changes: new listener first, the old one refuses new connections and finishes the ones it has', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'lb-rebind-'));
  let releaseSlow: (() => void) | undefined;
  const backend = await startBackend('b1', (req, res) => {
    if (req.url === '/slow') releaseSlow = () => res.end('slow done');
    else res.end('b1');
  });
  const blocker = http.createServer();
  const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
  let lb: LbProcess | undefined;
  t.after(async () => {
    keepAlive.destroy();
    await lb?.stop();
    await backend.close();
    await new Promise((resolve) => blocker.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });
  const file = join(dir, 'lb.toml');
  await writeFile(file, toml('127.0.0.1:0', backend.url));
  lb = await startLb(file);
  const oldUrl = lb.url;

  // An idle keep-alive connection and a request in flight on the old listener.
  assert.equal((await request(oldUrl, { agent: keepAlive })).body, 'b1');
  const slow = request(`${oldUrl}/slow`);
  while (releaseSlow === undefined) await new Promise((resolve) => setTimeout(resolve, 10));

  const newPort = await freePort();
  const from = lb.logs.length;
  await writeFile(file, toml(`127.0.0.1:${newPort}`, backend.url));
  const live = await lb.waitForLog((l) => /is live/.test(l.msg), 3000, from);
  assert.equal(live.listen, `127.0.0.1:${newPort}`);
  assert.deepEqual((live.changes as { settings: string[] }).settings, ['server.listen']);

  assert.equal((await request(`http://127.0.0.1:${newPort}/`)).body, 'b1', 'the new listener serves');
  await assert.rejects(request(oldUrl), /ECONNREFUSED/, 'the old listener accepts no new connection');
  releaseSlow!();
  const finished = await slow;
  assert.equal(finished.status, 200);
  assert.equal(finished.body, 'slow done', 'the request in flight on the old listener finished');
  await lb.waitForLog((l) => /^previous listener .* closed/.test(l.msg), 3000, from);

  // A failed bind: the address is taken. The running listener and generation stay.
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const taken = (blocker.address() as AddressInfo).port;
  const before = lb.logs.length;
  await writeFile(file, toml(`127.0.0.1:${taken}`, backend.url));
  const refused = await lb.waitForLog((l) => /^configuration not applied/.test(l.msg), 3000, before);
  assert.match(
    (refused.problems as string[])[0]!,
    new RegExp(`cannot listen on 127\\.0\\.0\\.1:${taken}: .*EADDRINUSE.*still listening on 127\\.0\\.0\\.1:${newPort}`),
  );
  assert.equal(refused.generation, 2);
  assert.equal((await request(`http://127.0.0.1:${newPort}/`)).body, 'b1', 'the running listener still serves');
  assert.equal(lb.child.exitCode, null);
});
