/**
 * TLS termination: `[server.tls] cert/key` serves HTTPS; the backend is told
 * `X-Forwarded-Proto: https` and `Forwarded: …;proto=https`; the same
 * request checks and Upgrade passthrough apply. The certificate is a
 * self-signed one made for the test by the openssl CLI (node:crypto cannot
 * write X.509 certificates).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { startSwitchyard, type RunningSwitchyard } from '../../src/testing.js';
import { parseResponses, sendRaw, startCapturingBackend, type CapturingBackend } from '../helpers/raw-http.js';

/** Sends raw bytes over TLS and collects the answer until the server closes or `responses` arrived. */
function sendTls(port: number, ca: Buffer, payload: string, responses = 1): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({ port, host: '127.0.0.1', ca, servername: 'localhost' });
    let text = '';
    const done = () => {
      socket.destroy();
      resolve(text);
    };
    const timer = setTimeout(done, 3000);
    socket.on('error', () => {});
    socket.on('close', () => (clearTimeout(timer), resolve(text)));
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (parseResponses(text).length >= responses) (clearTimeout(timer), done());
    });
    socket.on('secureConnect', () => socket.write(payload));
  });
}

describe('TLS termination', () => {
  let dir: string;
  let cert: Buffer;
  let backend: CapturingBackend;
  let lb: RunningSwitchyard;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'switchyard-tls-'));
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost',
        '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', join(dir, 'lb.key'), '-out', join(dir, 'lb.crt')],
      { stdio: 'ignore' },
    );
    cert = await readFile(join(dir, 'lb.crt'));
    backend = await startCapturingBackend();
    lb = await startSwitchyard({
      dir,
      toml: `
        [server]
        listen = "127.0.0.1:0"
        forwarded_header = true
        [server.tls]
        cert = "./lb.crt"
        key = "./lb.key"
        [pools.web]
        backends = [{ url = "${backend.url}" }]
      `,
    });
  });
  after(async () => {
    await lb?.close();
    await backend?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves HTTPS and tells the backend the client used https', async () => {
    const body = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port: lb.port, path: '/secure?x=1', ca: cert, servername: 'localhost' }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, text }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(body.status, 200);
    assert.equal(body.text, 'ok /secure?x=1');
    const { headers } = backend.seen.at(-1)!;
    assert.equal(headers['x-forwarded-proto'], 'https');
    assert.match(String(headers.forwarded), /;proto=https$/);
  });

  it('a plain-HTTP client on the TLS port gets no HTTP answer', async () => {
    const before = backend.seen.length;
    const result = await sendRaw(lb.port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n', { timeoutMs: 1000 });
    assert.equal(result.responses.length, 0);
    assert.equal(backend.seen.length, before);
  });

  it('the request checks apply over TLS: a smuggling attempt gets 400 and nothing is forwarded', async () => {
    const before = backend.seen.length;
    const text = await sendTls(lb.port, cert, 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.match(text, /^HTTP\/1\.1 400 /);
    assert.equal(parseResponses(text).length, 1);
    assert.equal(backend.seen.length, before);
  });

  it('Upgrade over TLS (wss://) reaches the backend and tunnels bytes', async () => {
    const server = http.createServer();
    server.on('upgrade', (_req: IncomingMessage, socket: Socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      socket.on('data', (d: Buffer) => socket.write(`echo:${d.toString()}`));
      socket.on('end', () => socket.end());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const port = (server.address() as { port: number }).port;
    const wss = await startSwitchyard({
      dir,
      toml: `
        [server]
        listen = "127.0.0.1:0"
        [server.tls]
        cert = "./lb.crt"
        key = "./lb.key"
        [pools.ws]
        backends = [{ url = "http://127.0.0.1:${port}" }]
      `,
    });
    const socket = tls.connect({ port: wss.port, host: '127.0.0.1', ca: cert, servername: 'localhost' });
    try {
      socket.on('error', () => {});
      await new Promise((resolve) => socket.once('secureConnect', resolve));
      let text = '';
      socket.on('data', (d: Buffer) => (text += d.toString()));
      socket.write('GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
      await waitFor(() => text.includes('\r\n\r\n'));
      assert.match(text, /^HTTP\/1\.1 101 /);
      socket.write('ping');
      await waitFor(() => text.endsWith('echo:ping'));
    } finally {
      socket.destroy();
      await wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
