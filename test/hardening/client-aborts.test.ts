/**
 * Clients that go away mid-response or mid-request: the upstream request is
 * cancelled, and after thousands of them the proxy's open file descriptors
 * are back where they started (the proxy runs in this process, so
 * /proc/self/fd counts its sockets; Linux only).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readdirSync } from 'node:fs';
import { startSwitchyard, startBackend, type RunningSwitchyard, type TestBackend } from '../../src/testing.js';
import { waitFor } from '../helpers/waiting.js';

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Connects, sends `request`, and destroys the socket once `bytes` bytes came back (0: right after sending). */
function abortAfter(port: number, request: string, bytes: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let received = 0;
    socket.on('error', () => {});
    socket.on('close', () => resolve());
    socket.on('data', (d: Buffer) => {
      received += d.length;
      if (received >= bytes) socket.destroy();
    });
    socket.write(request, () => {
      if (bytes === 0) socket.destroy();
    });
    setTimeout(() => socket.destroy(), 3000).unref();
  });
}

describe('client aborts', () => {
  let backend: TestBackend;
  let lb: RunningSwitchyard;
  let open = 0;
  let served = 0;

  before(async () => {
    const chunk = Buffer.alloc(16 * 1024, 97);
    backend = await startBackend('endless', (req, res) => {
      open++;
      served++;
      res.once('close', () => open--);
      if (req.method === 'POST') {
        // Reads the upload; it never ends, because the client goes away.
        req.resume();
        return;
      }
      // A response that never ends: a chunk now, then one every few ms.
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.write(chunk);
      const timer = setInterval(() => res.write(chunk), 5);
      res.once('close', () => clearInterval(timer));
    });
    lb = await startSwitchyard({
      toml: `
        [server]
        listen = "127.0.0.1:0"
        [pools.web]
        backends = [{ url = "${backend.url}" }]
      `,
    });
  });
  after(async () => {
    await lb?.close();
    await backend?.close();
  });

  it('2,000 aborts (mid-response and mid-upload): upstream requests cancelled, file descriptors back to baseline', async () => {
    const stats = lb.lb.registry.get(backend.url)!;
    // Warm up: one completed exchange, so lazily opened handles exist before the baseline.
    await abortAfter(lb.port, 'GET /warm HTTP/1.1\r\nHost: a\r\n\r\n', 1);
    await waitFor(() => open === 0 && stats.active === 0);
    const baseline = openFds();

    const TOTAL = 2000;
    const CONCURRENCY = 200;
    const before = served;
    for (let i = 0; i < TOTAL; i += CONCURRENCY) {
      const batch: Promise<void>[] = [];
      for (let j = 0; j < CONCURRENCY; j++) {
        batch.push(
          (i + j) % 4 === 3
            ? abortAfter(lb.port, `POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n${'x'.repeat(20_000)}`, 0)
            : abortAfter(lb.port, `GET /big/${i + j} HTTP/1.1\r\nHost: a\r\n\r\n`, 1000),
        );
      }
      await Promise.all(batch);
    }
    assert.ok(served - before >= TOTAL * 0.9, `the backend saw ${served - before} of ${TOTAL} requests`);
    await waitFor(() => open === 0, 5000).catch(() => {});
    assert.equal(open, 0, 'every upstream request was cancelled');
    assert.equal(stats.active, 0, 'Backend.active is back to 0');
    await waitFor(() => openFds() <= baseline + 2, 5000).catch(() => {});
    assert.ok(openFds() <= baseline + 2, `open fds: ${openFds()}, baseline ${baseline}`);

    // And it still serves.
    const res = await fetch(`${lb.url}/after`);
    assert.equal(res.status, 200);
    await res.body?.cancel();
  });
});
