/**
 * Backpressure: a slow client reading a 50 MB response does not make the
 * proxy buffer it. The proxy runs as the real CLI in a child process, so its
 * resident memory can be read from /proc/<pid>/status (Linux only).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBackend, type TestBackend } from '../../src/testing.js';
import { startLb, type LbProcess } from '../helpers/lb-process.js';

const RESPONSE_BYTES = 50 * 1024 * 1024;

function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

describe('backpressure', () => {
  let backend: TestBackend;
  let dir: string;
  let lb: LbProcess;
  let sent = 0;

  before(async () => {
    const chunk = Buffer.alloc(64 * 1024, 98);
    backend = await startBackend('big', (_req, res) => {
      sent = 0;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(RESPONSE_BYTES) });
      const pump = () => {
        while (sent < RESPONSE_BYTES) {
          sent += chunk.length;
          const more = res.write(chunk);
          if (sent >= RESPONSE_BYTES) {
            res.end();
            return;
          }
          if (!more) {
            res.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
    dir = await mkdtemp(join(tmpdir(), 'switchyard-backpressure-'));
    const file = join(dir, 'lb.toml');
    await writeFile(file, `[server]\nlisten = "127.0.0.1:0"\n[pools.web]\nbackends = [{ url = "${backend.url}" }]\n`);
    lb = await startLb(file, ['--no-watch', '--log-level', 'info']);
  });
  after(async () => {
    await lb?.stop();
    await backend?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('a slow reader of 50 MB: the proxy memory stays flat and the backend is held back', async () => {
    const pid = lb.child.pid!;
    // Warm-up, so that lazily loaded code is in the baseline.
    await (await fetch(`${lb.url}/warm`)).arrayBuffer();
    const baseline = rssBytes(pid);

    const socket = net.connect(lb.port, '127.0.0.1');
    socket.on('error', () => {});
    let received = 0;
    let peak = baseline;
    try {
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write('GET /big HTTP/1.1\r\nHost: a\r\n\r\n');
      // Read about 256 KB every 50 ms (~5 MB/s) for 2 seconds, while the backend could send at loopback speed.
      socket.pause();
      const deadline = Date.now() + 2000;
      while (Date.now() < deadline) {
        let budget = 256 * 1024;
        let chunk: Buffer | null;
        while (budget > 0 && (chunk = socket.read() as Buffer | null) !== null) {
          received += chunk.length;
          budget -= chunk.length;
        }
        peak = Math.max(peak, rssBytes(pid));
        await new Promise((r) => setTimeout(r, 50));
      }
      const growth = peak - baseline;
      assert.ok(received > 1024 * 1024, `the client read ${received} bytes`);
      assert.ok(received < RESPONSE_BYTES / 2, 'the client was slow');
      assert.ok(growth < 20 * 1024 * 1024, `proxy RSS grew by ${(growth / 1048576).toFixed(1)} MB reading ${(received / 1048576).toFixed(1)} MB of a 50 MB response`);
      assert.ok(sent < RESPONSE_BYTES * 0.8, `the backend could send ${(sent / 1048576).toFixed(1)} MB: nothing held it back`);
    } finally {
      socket.destroy();
    }
  });
});
