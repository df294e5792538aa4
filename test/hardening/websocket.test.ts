/**
 * WebSocket (Upgrade) passthrough, with the handshake and frames written by
 * hand over node:net: the request goes through the pipeline's selection
 * (sticky sessions pin it), a backend's refusal reaches the client as it is,
 * closing either side closes the other, and an open tunnel counts as an
 * active connection of its backend.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { startSwitchyard, startBackend, type RunningSwitchyard, type TestBackend } from '../../src/testing.js';
import { sendRaw } from '../helpers/raw-http.js';
import { waitFor, within } from '../helpers/waiting.js';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** A client frame: text, FIN, masked (RFC 6455 §5.2; payloads under 126 bytes). */
function clientFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = randomBytes(4);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
}

function serverFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  return Buffer.concat([Buffer.from([0x81, payload.length]), payload]);
}

/** Decodes one short frame (masked or not) → its text. */
function frameText(frame: Buffer): string {
  const masked = (frame[1]! & 0x80) !== 0;
  const length = frame[1]! & 0x7f;
  if (!masked) return frame.subarray(2, 2 + length).toString();
  const mask = frame.subarray(2, 6);
  return Buffer.from(frame.subarray(6, 6 + length).map((b, i) => b ^ mask[i % 4]!)).toString();
}

interface WebSocketBackend {
  backend: TestBackend;
  /** Upgrade requests seen, and the server side of each tunnel. */
  upgrades: { req: IncomingMessage; socket: net.Socket }[];
}

async function startWebSocketBackend(name: string): Promise<WebSocketBackend> {
  const backend = await startBackend(name);
  const upgrades: WebSocketBackend['upgrades'] = [];
  backend.server.on('upgrade', (req: IncomingMessage, socket: net.Socket) => {
    socket.on('error', () => {});
    upgrades.push({ req, socket });
    // Never answered: the client gives up first.
    if (req.url === '/never') return;
    // Answered late: the switch outlasts a reload's shutdown_grace.
    if (req.url === '/late') {
      setTimeout(() => switchProtocols(req, socket, name), 800);
      return;
    }
    if (req.url === '/forbidden') {
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 9\r\nConnection: close\r\n\r\nforbidden');
      return;
    }
    switchProtocols(req, socket, name);
  });
  return { backend, upgrades };
}

/** The backend's side of a WebSocket: the 101, then an echo of each frame prefixed with its name. */
function switchProtocols(req: IncomingMessage, socket: net.Socket, name: string): void {
  if (socket.destroyed) return;
  const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}${GUID}`).digest('base64');
  socket.write(
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nX-Backend: ${name}\r\n\r\n`,
  );
  socket.on('data', (d: Buffer) => socket.write(serverFrame(`${name}:${frameText(d)}`)));
  // Like a real WebSocket server: the peer ending its half ends the connection (/stubborn does not).
  if (req.url !== '/stubborn') socket.on('end', () => socket.end());
}

/** Closes each backend and the tunnels it still holds (some may never have started). */
async function closeWebSocketBackends(backends: readonly (WebSocketBackend | undefined)[]): Promise<void> {
  for (const b of backends) {
    for (const u of b?.upgrades ?? []) u.socket.destroy();
    await b?.backend.close();
  }
}

interface ClientTunnel {
  socket: net.Socket;
  /** The response head (status line and headers). */
  head: string;
  /** The next bytes after the head. */
  next(): Promise<Buffer>;
  /** Every byte after the head not taken by next() yet. */
  buffered(): Buffer;
  closed: Promise<void>;
}

/** Sends an Upgrade request by hand and reads the response head. */
async function openWebSocket(port: number, path: string, extraHeaders = '', upgrade = 'websocket'): Promise<ClientTunnel & { key: string }> {
  const key = randomBytes(16).toString('base64');
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const queue: Buffer[] = [];
  let waiting: ((b: Buffer) => void) | undefined;
  let buffer = Buffer.alloc(0);
  let head: string | undefined;
  let gotHead: (h: string) => void;
  const headPromise = new Promise<string>((resolve) => (gotHead = resolve));
  socket.on('data', (d: Buffer) => {
    if (head === undefined) {
      buffer = Buffer.concat([buffer, d]);
      const end = buffer.indexOf('\r\n\r\n');
      if (end === -1) return;
      head = buffer.subarray(0, end).toString('latin1');
      gotHead(head);
      d = buffer.subarray(end + 4);
      if (d.length === 0) return;
    }
    if (waiting) {
      const w = waiting;
      waiting = undefined;
      w(d);
    } else queue.push(d);
  });
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: ws.example\r\nUpgrade: ${upgrade}\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extraHeaders}\r\n`,
  );
  const headText = await Promise.race([headPromise, closed.then(() => buffer.toString('latin1'))]);
  return {
    socket,
    key,
    head: headText,
    closed,
    next: () => (queue.length > 0 ? Promise.resolve(queue.shift()!) : new Promise((resolve) => (waiting = resolve))),
    buffered: () => Buffer.concat(queue.splice(0)),
  };
}

describe('WebSocket passthrough', () => {
  let one: WebSocketBackend;
  let two: WebSocketBackend;
  let lb: RunningSwitchyard;

  before(async () => {
    one = await startWebSocketBackend('one');
    two = await startWebSocketBackend('two');
    lb = await startSwitchyard({
      toml: `
        [server]
        listen = "127.0.0.1:0"
        [pools.ws]
        backends = [{ url = "${one.backend.url}" }, { url = "${two.backend.url}" }]
        [[pipeline]]
        plugin = "sticky-session"
        cookie = "lb_sticky"
      `,
    });
  });
  after(async () => {
    await lb?.close();
    await closeWebSocketBackends([one, two]);
  });

  it('handshake through the proxy, frames both ways', async () => {
    const ws = await openWebSocket(lb.port, '/chat?room=1');
    try {
      assert.match(ws.head, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
      assert.match(ws.head, /\r\nupgrade: websocket/i);
      assert.match(ws.head, /\r\nconnection: upgrade/i);
      const accept = createHash('sha1').update(`${ws.key}${GUID}`).digest('base64');
      assert.match(ws.head, new RegExp(`\\r\\nSec-WebSocket-Accept: ${accept.replace(/[+/]/g, '\\$&')}`, 'i'));
      const name = /X-Backend: (\w+)/i.exec(ws.head)![1]!;
      ws.socket.write(clientFrame('hello'));
      assert.equal(frameText(await ws.next()), `${name}:hello`);
      ws.socket.write(clientFrame('again'));
      assert.equal(frameText(await ws.next()), `${name}:again`);
      const backend = (name === 'one' ? one : two).upgrades.at(-1)!.req;
      assert.equal(backend.url, '/chat?room=1');
      assert.equal(backend.headers['sec-websocket-key'], ws.key);
      assert.equal(backend.headers['x-forwarded-for'], '127.0.0.1');
    } finally {
      ws.socket.destroy();
    }
  });

  it('an open tunnel is an active connection; the client closing closes the backend side', async () => {
    const ws = await openWebSocket(lb.port, '/live');
    const name = /X-Backend: (\w+)/i.exec(ws.head)![1]!;
    const target = name === 'one' ? one : two;
    const stats = lb.lb.registry.get(target.backend.url)!;
    const serverSide = target.upgrades.at(-1)!.socket;
    const serverClosed = new Promise<void>((resolve) => serverSide.once('close', () => resolve()));
    assert.equal(stats.active, 1, 'counted while open');
    ws.socket.end();
    await serverClosed;
    await waitFor(() => stats.active === 0);
  });

  it('a backend that keeps its half open after the client ended: closed anyway, soon', async () => {
    const ws = await openWebSocket(lb.port, '/stubborn');
    const name = /X-Backend: (\w+)/i.exec(ws.head)![1]!;
    const stats = lb.lb.registry.get((name === 'one' ? one : two).backend.url)!;
    assert.equal(stats.active, 1);
    const started = Date.now();
    ws.socket.end();
    await ws.closed;
    await waitFor(() => stats.active === 0);
    assert.ok(Date.now() - started < 2500, `closed after ${Date.now() - started}ms`);
  });

  it('the backend closing closes the client side', async () => {
    const ws = await openWebSocket(lb.port, '/live');
    const name = /X-Backend: (\w+)/i.exec(ws.head)![1]!;
    const target = name === 'one' ? one : two;
    target.upgrades.at(-1)!.socket.destroy();
    await ws.closed;
    await waitFor(() => lb.lb.registry.get(target.backend.url)!.active === 0);
  });

  it('a backend refusing the upgrade: its 403 reaches the client, then the connection closes', async () => {
    const ws = await openWebSocket(lb.port, '/forbidden');
    await ws.closed;
    assert.match(ws.head, /^HTTP\/1\.1 403 Forbidden\r\n/);
    assert.match(ws.head, /\r\nconnection: close/i);
    assert.equal(ws.buffered().toString(), 'forbidden');
  });

  it('a client that goes away before the backend answered its Upgrade: the upstream request is cancelled at once', async () => {
    const seen = one.upgrades.length + two.upgrades.length;
    const socket = net.connect(lb.port, '127.0.0.1');
    socket.on('error', () => {});
    try {
      socket.write(
        'GET /never HTTP/1.1\r\nHost: ws.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
      await waitFor(() => one.upgrades.length + two.upgrades.length > seen);
      const target = one.upgrades.some((u) => u.req.url === '/never') ? one : two;
      const backendSide = target.upgrades.at(-1)!.socket;
      const stats = lb.lb.registry.get(target.backend.url)!;
      assert.equal(stats.active, 1);
      const backendEnded = new Promise<void>((resolve) => backendSide.once('end', () => resolve()));
      socket.end();
      // Without noticing, the request would wait for response_timeout (30 s by default).
      await within(backendEnded, 2000, 'the backend request was not cancelled within 2 s of the client leaving');
      await waitFor(() => stats.active === 0);
    } finally {
      socket.destroy();
    }
  });

  it('sticky sessions pin the upgrade to the backend the cookie names', async () => {
    // A plain request gets the cookie (the strategy picks; sticky-session pins the client to it).
    const first = await fetch(`${lb.url}/page`);
    const cookie = first.headers.get('set-cookie')!.split(';')[0]!;
    const pinnedTo = await first.text();
    for (let i = 0; i < 4; i++) {
      const ws = await openWebSocket(lb.port, '/sticky', `Cookie: ${cookie}\r\n`);
      try {
        assert.match(ws.head, /^HTTP\/1\.1 101 /);
        assert.equal(/X-Backend: (\w+)/i.exec(ws.head)![1], pinnedTo, `upgrade ${i} went to the pinned backend`);
      } finally {
        ws.socket.destroy();
      }
    }
  });

  it('an Upgrade pipelined behind a request waits for its response, then becomes a tunnel', async () => {
    const socket = net.connect(lb.port, '127.0.0.1');
    socket.on('error', () => {});
    try {
      let received = Buffer.alloc(0);
      const key = randomBytes(16).toString('base64');
      socket.write(
        'GET /page HTTP/1.1\r\nHost: ws.example\r\n\r\n' +
          `GET /chat HTTP/1.1\r\nHost: ws.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
      socket.write(clientFrame('first'));
      const frameAt = () => received.indexOf('\r\n\r\n', received.indexOf('101 Switching Protocols')) + 4;
      await new Promise<void>((resolve, reject) => {
        socket.on('data', (d: Buffer) => {
          received = Buffer.concat([received, d]);
          if (received.includes('101 Switching Protocols') && frameAt() > 3 && received.length > frameAt()) resolve();
        });
        socket.once('close', () => reject(new Error(`closed: ${received.toString('latin1')}`)));
      });
      const text = received.toString('latin1');
      assert.match(text, /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\n(one|two)HTTP\/1\.1 101 Switching Protocols\r\n/, 'the answer to the request, then the switch');
      const name = /X-Backend: (\w+)/i.exec(text)![1]!;
      assert.equal(frameText(received.subarray(frameAt())), `${name}:first`, 'the bytes sent behind the Upgrade went through the tunnel');
    } finally {
      socket.destroy();
    }
  });

  it('Upgrade: h2c is answered as plain HTTP/1.1: no tunnel that routes and plugins cannot see (h2c smuggling)', async () => {
    const upgradesBefore = one.upgrades.length + two.upgrades.length;
    const result = await sendRaw(
      lb.port,
      'GET /h2c HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n',
    );
    assert.deepEqual(result.responses.map((r) => r.status), [200], result.text);
    assert.ok(result.closed, 'the connection closes after the answer');
    assert.equal(one.upgrades.length + two.upgrades.length, upgradesBefore, 'no backend was offered the upgrade');
  });

  it('Upgrade: h2c, websocket: the WebSocket is tunnelled, h2c is not offered', async () => {
    const ws = await openWebSocket(lb.port, '/mixed', '', 'h2c, websocket');
    try {
      assert.match(ws.head, /^HTTP\/1\.1 101 /);
      const seen = [...one.upgrades, ...two.upgrades].find((u) => u.req.url === '/mixed');
      assert.equal(seen?.req.headers.upgrade, 'websocket');
    } finally {
      ws.socket.destroy();
    }
  });

  it('an Upgrade request with a body is refused', async () => {
    const ws = await openWebSocket(lb.port, '/with-body', 'Content-Length: 5\r\n');
    await ws.closed;
    assert.match(ws.head, /^HTTP\/1\.1 400 /);
  });
});

describe('WebSocket tunnels across a reload', () => {
  let kept: WebSocketBackend;
  let removed: WebSocketBackend;
  let lb: RunningSwitchyard;
  const toml = (pools: string) => `
    [server]
    listen = "127.0.0.1:0"
    shutdown_grace = "300ms"
    ${pools}
    [[routes]]
    match = { path_prefix = "/kept" }
    pool = "kept"
    [[routes]]
    match = { path_prefix = "/" }
    pool = "removed"
  `;
  const bothPools = () => `
    [pools.kept]
    backends = [{ url = "${kept.backend.url}" }]
    [pools.removed]
    backends = [{ url = "${removed.backend.url}" }]
  `;

  // The pool "removed" now serves from the kept backend: its own backend goes.
  const removedBackendGone = () => `
    [pools.kept]
    backends = [{ url = "${kept.backend.url}" }]
    [pools.removed]
    backends = [{ url = "${kept.backend.url}" }]
  `;

  before(async () => {
    kept = await startWebSocketBackend('kept');
    removed = await startWebSocketBackend('removed');
    lb = await startSwitchyard({ toml: toml(bothPools()), captureLogs: true });
  });
  after(async () => {
    await lb?.close();
    await closeWebSocketBackends([kept, removed]);
  });

  it('a reload that removes its backend: the tunnel gets shutdown_grace, then both sides close; a tunnel to a backend that stays is kept', async () => {
    const staying = await openWebSocket(lb.port, '/kept');
    const going = await openWebSocket(lb.port, '/removed');
    try {
      assert.match(going.head, /X-Backend: removed/i);
      const goingBackend = lb.lb.registry.get(removed.backend.url)!;
      const backendSide = removed.upgrades.at(-1)!.socket;
      const backendClosed = new Promise<void>((resolve) => backendSide.once('close', () => resolve()));
      await lb.reload(toml(removedBackendGone()));
      const reloadedAt = Date.now();
      going.socket.write(clientFrame('in grace'));
      assert.equal(frameText(await going.next()), 'removed:in grace', 'served during the grace period');
      await within(Promise.all([going.closed, backendClosed]), 3000, 'the tunnel to the removed backend was still open 3 s after the reload');
      assert.ok(Date.now() - reloadedAt >= 250, `closed ${Date.now() - reloadedAt}ms after the reload`);
      assert.equal(goingBackend.active, 0);
      assert.ok(lb.logs.some((l) => l.level === 40 && l.backend === removed.backend.url && l.tunnels === 1));
      staying.socket.write(clientFrame('still here'));
      assert.equal(frameText(await staying.next()), 'kept:still here');
      assert.equal(lb.lb.registry.get(kept.backend.url)!.active, 1);
    } finally {
      staying.socket.destroy();
      going.socket.destroy();
    }
  });

  it('an Upgrade answered after the grace of the reload that removed its backend: its tunnel gets the grace from then on, and closes', async () => {
    await lb.reload(toml(bothPools()));
    const pending = openWebSocket(lb.port, '/late');
    await waitFor(() => removed.upgrades.some((u) => u.req.url === '/late'));
    await lb.reload(toml(removedBackendGone()));
    const late = await pending;
    try {
      assert.match(late.head, /X-Backend: removed/i, 'the switch went through');
      const openedAt = Date.now();
      await within(late.closed, 3000, 'the late tunnel to the removed backend was still open 3 s after it opened');
      assert.ok(Date.now() - openedAt >= 250, `closed ${Date.now() - openedAt}ms after it opened`);
    } finally {
      late.socket.destroy();
    }
  });
});
