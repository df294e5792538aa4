/**
 * Without Node's parser (a Node that no longer exports it, or
 * SWITCHYARD_BACKEND_CLIENT=undici) every backend is reached through undici:
 * the real CLI, asked for undici, proxies what the proxy path meets — a GET,
 * a whole body, a streamed chunked body, a 204 with a Content-Length, a
 * HEAD — and says at start which client it uses.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLb } from '../helpers/lb-process.js';
import { parseResponses, sendRaw } from '../helpers/raw-http.js';

async function startEchoBackend(): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/no-content') {
        res.writeHead(204, { 'content-length': '0' }).end();
        return;
      }
      res.setHeader('content-type', 'text/plain');
      res.end(`${req.method} ${req.url} ${Buffer.concat(chunks).toString()}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

for (const client of ['undici', 'native'] as const) {
  test(`SWITCHYARD_BACKEND_CLIENT=${client === 'undici' ? 'undici: every request goes through undici' : '(unset): Node\'s parser, and no undici line at start'}`, async (t) => {
    const backend = await startEchoBackend();
    const dir = await mkdtemp(join(tmpdir(), 'lb-client-'));
    t.after(async () => {
      await backend.close();
      await rm(dir, { recursive: true, force: true });
    });
    const file = join(dir, 'lb.toml');
    await writeFile(file, `[server]\nlisten = "127.0.0.1:0"\n[pools.web]\nbackends = [{ url = "${backend.url}" }]\n`);
    const lb = await startLb(file, ['--no-watch'], client === 'undici' ? { env: { SWITCHYARD_BACKEND_CLIENT: 'undici' } } : {});
    t.after(() => lb.stop());

    const said = lb.logs.some((l) => l.backendClient === 'undici');
    assert.equal(said, client === 'undici', 'the start-up log names undici only when it carries the traffic');

    const get = await sendRaw(lb.port, 'GET /a HTTP/1.1\r\nHost: x\r\n\r\n', { responses: 1 });
    assert.equal(get.responses[0]?.body, 'GET /a ');
    const whole = await sendRaw(lb.port, 'POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello', { responses: 1 });
    assert.equal(whole.responses[0]?.body, 'POST /b hello');
    const chunked = await sendRaw(lb.port, 'POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n', { responses: 1 });
    assert.equal(chunked.responses[0]?.body, 'POST /c abcde');
    const noContent = await sendRaw(lb.port, 'GET /no-content HTTP/1.1\r\nHost: x\r\n\r\n', { responses: 1 });
    assert.equal(noContent.responses[0]?.status, 204, noContent.text);
    // A HEAD answer has no body to wait for: read what comes within a moment, then parse it as one.
    const head = await sendRaw(lb.port, 'HEAD /d HTTP/1.1\r\nHost: x\r\n\r\n', { timeoutMs: 300 });
    const parsed = parseResponses(head.text, false, ['HEAD']);
    assert.deepEqual(
      parsed.map((r) => [r.status, r.body]),
      [[200, '']],
      head.text,
    );
  });
}
