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
import net from 'node:net';
import { once } from 'node:events';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { startSwitchyard, type RunningSwitchyard } from '../../src/testing.js';
import { parseResponses, sendRaw, startCapturingBackend, type CapturingBackend } from '../helpers/raw-http.js';
import { startLb } from '../helpers/lb-process.js';
import { waitFor } from '../helpers/waiting.js';

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

  it('a client that never sends its TLS handshake is closed after headers_timeout (not Node\'s 120 s), also as a reload sets it', async () => {
    const toml = (timeout: string) => `
      [server]
      listen = "127.0.0.1:0"
      headers_timeout = "${timeout}"
      [server.tls]
      cert = "./lb.crt"
      key = "./lb.key"
      [pools.web]
      backends = [{ url = "${backend.url}" }]
    `;
    const slow = await startSwitchyard({ dir, toml: toml('1s') });
    const sockets: Socket[] = [];
    /** ms until a TCP connection that sends nothing is closed by the listener; fails past 3 s. */
    const closedAfter = async (): Promise<number> => {
      const socket = net.connect(slow.port, '127.0.0.1');
      sockets.push(socket);
      socket.on('error', () => {});
      socket.resume();
      await once(socket, 'connect');
      const started = Date.now();
      const timer = setTimeout(() => socket.destroy(new Error('still open after 3 s')), 3000);
      const [hadError] = (await once(socket, 'close')) as [boolean];
      clearTimeout(timer);
      assert.equal(hadError, false, 'the listener did not close it within 3 s');
      return Date.now() - started;
    };
    try {
      assert.ok((await closedAfter()) >= 900);
      await slow.reload(toml('200ms'));
      assert.ok((await closedAfter()) < 800);
    } finally {
      for (const socket of sockets) socket.destroy();
      await slow.close();
    }
  });

  it('a reload naming a key that is not the certificate\'s own is refused: the generation stays, its certificate keeps serving', async () => {
    execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', join(dir, 'other.key')], { stdio: 'ignore' });
    const toml = (key: string) => `
      [server]
      listen = "127.0.0.1:0"
      [server.tls]
      cert = "./lb.crt"
      key = "${key}"
      [pools.web]
      backends = [{ url = "${backend.url}" }]
    `;
    const secure = await startSwitchyard({ dir, toml: toml('./lb.key') });
    try {
      const generation = secure.lb.generation.id;
      await assert.rejects(secure.reload(toml('./other.key')), /server\.tls: the certificate .*lb\.crt and key .*other\.key cannot be used/);
      assert.equal(secure.lb.generation.id, generation);
      assert.match(String(secure.lb.reloads.lastRefused?.problems), /other\.key cannot be used/);
      assert.match(await sendTls(secure.port, cert, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 200 /);
    } finally {
      await secure.close();
    }
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

/**
 * https backends: the TLS connection is made in the backend's own name
 * (its URL's host), whatever Host the client sent — which is passed
 * through. The backend's certificate here lists only localhost and
 * 127.0.0.1; `lb run` trusts it through NODE_EXTRA_CA_CERTS.
 */
describe('https backends', () => {
  let dir: string;
  let server: https.Server;
  let port: number;
  /** The SNI name of each TLS connection the backend accepted (false: none), and the Host of each request. */
  const names: (string | false | null)[] = [];
  const hosts: (string | undefined)[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'switchyard-tls-backend-'));
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost',
        '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', join(dir, 'backend.key'), '-out', join(dir, 'backend.crt')],
      { stdio: 'ignore' },
    );
    server = https.createServer({ cert: await readFile(join(dir, 'backend.crt')), key: await readFile(join(dir, 'backend.key')) }, (req, res) => {
      hosts.push(req.headers.host);
      res.end('secure backend');
    });
    server.on('secureConnection', (socket: tls.TLSSocket) => names.push(socket.servername));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    port = (server.address() as { port: number }).port;
    await writeFile(join(dir, 'lb.toml'), `[server]\nlisten = "127.0.0.1:0"\n[pools.web]\nbackends = [{ url = "https://127.0.0.1:${port}" }]\n`);
  });
  after(async () => {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    await rm(dir, { recursive: true, force: true });
  });

  it('the certificate is checked against the backend URL, not the client\'s Host; the Host is passed through', async () => {
    const lb = await startLb(join(dir, 'lb.toml'), ['--no-watch'], { env: { NODE_EXTRA_CA_CERTS: join(dir, 'backend.crt') } });
    try {
      names.length = 0;
      hosts.length = 0;
      const result = await sendRaw(lb.port, 'GET /a HTTP/1.1\r\nHost: app.example\r\n\r\nGET /b HTTP/1.1\r\nHost: other.example\r\n\r\n', {
        responses: 2,
        timeoutMs: 5000,
      });
      assert.deepEqual(result.responses.map((r) => `${r.status} ${r.body}`), ['200 secure backend', '200 secure backend']);
      assert.deepEqual(hosts, ['app.example', 'other.example']);
      // An IP address is never sent as SNI (RFC 6066); the certificate was checked against 127.0.0.1.
      assert.ok(names.length > 0 && names.every((name) => name === false), `SNI sent: ${JSON.stringify(names)}`);
    } finally {
      await lb.stop();
    }
  });

  it('the http health check, with `host` set, checks the certificate against the backend URL too: the backend comes up', async () => {
    const file = join(dir, 'health.toml');
    const url = `https://127.0.0.1:${port}`;
    await writeFile(
      file,
      `[server]\nlisten = "127.0.0.1:0"\n[pools.web]\nbackends = [{ url = "${url}" }]\n` +
        `health = { checker = "http", path = "/healthz", host = "app.example", interval = "100ms", timeout = "1s" }\n`,
    );
    const lb = await startLb(file, ['--no-watch', '--log-level', 'info'], { env: { NODE_EXTRA_CA_CERTS: join(dir, 'backend.crt') } });
    try {
      const change = await lb.waitForLog((l) => l.backend === url && (l.to === 'up' || l.to === 'down'), 5000);
      assert.equal(change.to, 'up', String(change.reason));
    } finally {
      await lb.stop();
    }
  });

  it('verification is on by default: a certificate the process does not trust → 502 "could not be reached", not a reset', async () => {
    const lb = await startSwitchyard({
      captureLogs: true,
      toml: `[server]\nlisten = "127.0.0.1:0"\n[pools.web]\nbackends = [{ url = "https://127.0.0.1:${port}" }]\n`,
    });
    try {
      const result = await sendRaw(lb.port, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', { responses: 1, timeoutMs: 5000 });
      assert.equal(result.responses[0]?.status, 502);
      assert.match(result.responses[0]!.body, /could not be reached/);
      const logged = lb.logs.find((l) => l.code === 'LB_ERR_UPSTREAM_CONNECT');
      assert.equal((logged?.err as { code?: string } | undefined)?.code, 'DEPTH_ZERO_SELF_SIGNED_CERT', 'the log says why');
    } finally {
      await lb.close();
    }
  });
});
