/**
 * Pooled backend connections that break: a request that fails on a reused
 * (stale) keep-alive socket is sent again, on as many stale sockets as the
 * pool hands out, until one is fresh — when the method and body allow it;
 * a request reset on a fresh connection is never sent again by the core;
 * a close-delimited body ended by a reset reaches the client as broken.
 */
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startSwitchyard, type RunningSwitchyard } from '../../src/testing.js';
import { readRequestHead, sendRaw, startRawBackend } from '../helpers/raw-http.js';
import { waitFor } from '../helpers/waiting.js';

const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';

interface Seen {
  readonly connection: number;
  readonly line: string;
}

/** A raw backend that numbers its connections, records each request line and lets the test decide the answer. */
async function startBackend(answer: (socket: net.Socket, connection: number, line: string) => Promise<void> | void) {
  const seen: Seen[] = [];
  let connections = 0;
  const backend = await startRawBackend(async (socket) => {
    const connection = ++connections;
    while (!socket.destroyed) {
      const head = await readRequestHead(socket);
      const line = head.split('\r\n')[0]!;
      seen.push({ connection, line });
      socket.resume();
      await answer(socket, connection, line);
    }
  });
  return Object.assign(backend, { seen });
}

function toml(url: string): string {
  return `
    [server]
    listen = "127.0.0.1:0"
    [pools.app]
    passive_failures = 0
    backends = [{ url = "${url}" }]
  `;
}

describe('backend connections that break', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function start(answer: Parameters<typeof startBackend>[0]) {
    const backend = await startBackend(answer);
    cleanups.push(() => backend.close());
    const lb: RunningSwitchyard = await startSwitchyard({ toml: toml(backend.url), captureLogs: true });
    cleanups.push(() => lb.close());
    return { backend, lb };
  }

  /**
   * A proxy whose pool holds two idle keep-alive sockets to a backend that
   * then closes each of them as the next request arrives on it (its idle
   * timeout firing at that very moment). `old` holds their connection numbers.
   */
  async function startWithTwoStaleSockets() {
    const old = new Set<number>();
    let dropOld = false;
    let warmArrived = 0;
    let bothWarmIn!: () => void;
    const bothIn = new Promise<void>((resolve) => (bothWarmIn = resolve));
    const { backend, lb } = await start(async (socket, connection, line) => {
      if (dropOld && old.has(connection)) {
        socket.destroy();
        return;
      }
      if (line.startsWith('GET /warm')) {
        // Held until both are in, so the two warm-ups take two connections.
        old.add(connection);
        if (++warmArrived === 2) bothWarmIn();
        await bothIn;
      }
      socket.write(OK);
    });
    const warm = await Promise.all([
      sendRaw(lb.port, 'GET /warm-1 HTTP/1.1\r\nHost: a\r\n\r\n', { responses: 1 }),
      sendRaw(lb.port, 'GET /warm-2 HTTP/1.1\r\nHost: a\r\n\r\n', { responses: 1 }),
    ]);
    assert.deepEqual(warm.map((r) => r.responses[0]?.status), [200, 200]);
    dropOld = true;
    return { backend, lb, old };
  }

  it('a GET that meets stale sockets is sent again until a fresh connection answers it', async () => {
    const { backend, lb, old } = await startWithTwoStaleSockets();
    const result = await sendRaw(lb.port, 'GET /after HTTP/1.1\r\nHost: a\r\n\r\n', { responses: 1 });
    assert.equal(result.responses[0]?.status, 200, result.text);
    const after = backend.seen.filter((s) => s.line.startsWith('GET /after'));
    assert.equal(after.filter((s) => !old.has(s.connection)).length, 1, `answered once, on a fresh connection: ${JSON.stringify(after)}`);
    assert.equal(after.filter((s) => old.has(s.connection)).length, 2, `both stale sockets were met first: ${JSON.stringify(after)}`);
  });

  it('a POST with a streamed body that meets a stale socket is not sent again: 502', async () => {
    const { backend, lb } = await startWithTwoStaleSockets();
    const result = await sendRaw(lb.port, 'POST /order HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello', { responses: 1 });
    assert.equal(result.responses[0]?.status, 502, result.text);
    assert.equal(backend.seen.filter((s) => s.line.startsWith('POST')).length, 1, 'sent once');
  });

  it('a GET reset on a fresh connection, after the backend read it, is not sent again by the core', async () => {
    const { backend, lb } = await start((socket) => {
      socket.resetAndDestroy();
    });
    const result = await sendRaw(lb.port, 'GET /work HTTP/1.1\r\nHost: a\r\n\r\n', { responses: 1 });
    assert.equal(result.responses[0]?.status, 502, result.text);
    assert.equal(backend.seen.length, 1, `the backend saw it once: ${JSON.stringify(backend.seen)}`);
  });

  it('a close-delimited body ended by a reset is cut at the client, never completed, and logged', async () => {
    let headRelayed!: () => void;
    const relayed = new Promise<void>((resolve) => (headRelayed = resolve));
    const { lb } = await start(async (socket) => {
      socket.write('HTTP/1.1 200 OK\r\n\r\npartial-body');
      await relayed;
      socket.resetAndDestroy();
    });
    const logged = lb.logs.length;
    const client = net.connect(lb.port, '127.0.0.1');
    cleanups.push(async () => void client.destroy());
    let text = '';
    const ended = new Promise<'reset' | 'clean'>((resolve) => {
      client.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1');
        if (text.includes('partial-body')) headRelayed();
      });
      client.on('error', () => resolve('reset'));
      client.on('end', () => resolve('clean'));
    });
    client.write('GET /stream HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.equal(await ended, 'reset', `the connection was reset, not closed cleanly: ${JSON.stringify(text)}`);
    assert.match(text, /^HTTP\/1\.1 200/);
    assert.doesNotMatch(text, /\r\n0\r\n\r\n$/, 'no final chunk: the client can tell the body is incomplete');
    await waitFor(() => lb.logs.slice(logged).some((l) => l.level === 40 && /broke off/.test(l.msg)));
  });
});
