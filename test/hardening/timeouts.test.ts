/**
 * Timeouts on both sides. Client: headers_timeout (slowloris), idle_timeout
 * (keep-alive), body_timeout (stalled uploads). Backend: connect_timeout
 * and response_timeout (504), and a response body that stalls. Each is
 * short here, so undici's 300 s defaults would fail these tests.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { WHOLE_BODY_LIMIT } from '../../src/server/whole-body.js';
import { startSwitchyard, startBackend, type RunningSwitchyard, type TestBackend } from '../../src/testing.js';
import { startHangingListener, type HangingListener } from '../helpers/hanging-listener.js';
import { sendRaw, startCapturingBackend, startRawBackend, type CapturingBackend } from '../helpers/raw-http.js';
import { waitFor, within } from '../helpers/waiting.js';

describe('client-side timeouts', () => {
  let backend: CapturingBackend;
  let lb: RunningSwitchyard;

  before(async () => {
    backend = await startCapturingBackend();
    lb = await startSwitchyard({
      toml: `
        [server]
        listen = "127.0.0.1:0"
        headers_timeout = "1s"
        idle_timeout = "300ms"
        body_timeout = "300ms"
        [pools.web]
        backends = [{ url = "${backend.url}" }]
      `,
    });
  });
  after(async () => {
    await lb?.close();
    await backend?.close();
  });

  it('slowloris: 200 sockets trickling headers are cut after headers_timeout while normal GETs all succeed', async () => {
    const SLOW = 200;
    const sockets: net.Socket[] = [];
    const closedAt: number[] = [];
    const answers: string[] = [];
    // fetch loads and compiles undici on its first call: done here, that is not counted as serving time under the trickle.
    await (await fetch(`${lb.url}/warm-up`)).text();
    const started = Date.now();
    const trickle = setInterval(() => {
      for (const s of sockets) if (!s.destroyed) s.write(`X-Slow-${Date.now() % 1000}: 1\r\n`);
    }, 100);
    try {
      for (let i = 0; i < SLOW; i++) {
        const socket = net.connect(lb.port, '127.0.0.1');
        let text = '';
        socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
        socket.on('error', () => {});
        socket.on('close', () => {
          closedAt.push(Date.now() - started);
          answers.push(text);
        });
        socket.write('GET /slow HTTP/1.1\r\nHost: a\r\n');
        sockets.push(socket);
      }
      // Normal clients, in parallel with the trickle, for longer than headers_timeout.
      // What matters is that they are served while every trickler still holds
      // its socket, not how many fit in the time: that depends on the machine.
      // Each request's own finish counts, not its batch's: a batch ends with its slowest.
      const statuses: number[] = [];
      const servedAt: number[] = [];
      while (Date.now() - started < 1800) {
        const batch = await Promise.all(
          Array.from({ length: 10 }, () =>
            fetch(`${lb.url}/normal`).then(async (r) => {
              await r.text();
              servedAt.push(Date.now() - started);
              return r.status;
            }),
          ),
        );
        statuses.push(...batch);
      }
      assert.deepEqual(new Set(statuses), new Set([200]), 'every normal request succeeded');
      // Margins for a loaded machine (it failed there at the old ones); a headers_timeout that never fires still fails.
      const deadline = Date.now() + 5000;
      while (closedAt.length < SLOW && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.equal(closedAt.length, SLOW, 'every slowloris socket was cut');
      assert.ok(Math.min(...closedAt) >= 900, `cut too early: ${Math.min(...closedAt)}ms`);
      assert.ok(
        servedAt.some((t) => t < Math.min(...closedAt)),
        `normal requests were served while all ${SLOW} tricklers were connected (served at ${servedAt.join(', ')} ms; first cut at ${Math.min(...closedAt)} ms)`,
      );
      assert.ok(Math.max(...closedAt) < 5500, `cut too late: ${Math.max(...closedAt)}ms`);
      assert.ok(answers.every((a) => a === '' || a.startsWith('HTTP/1.1 408')), 'a trickler gets 408 (or nothing)');
      assert.ok(!backend.seen.some((s) => s.url === '/slow'), 'no trickled request reached the backend');
    } finally {
      clearInterval(trickle);
      for (const s of sockets) s.destroy();
    }
  });

  it('idle_timeout: an idle keep-alive connection is closed', async () => {
    const started = Date.now();
    const result = await sendRaw(lb.port, 'GET /idle HTTP/1.1\r\nHost: a\r\n\r\n', { timeoutMs: 3000 });
    assert.equal(result.responses[0]?.status, 200);
    assert.match(result.responses[0]!.headers['keep-alive'] ?? '', /timeout=0?\b/);
    assert.ok(result.closed, 'closed by the proxy');
    // Node closes a kept socket one second after the advertised timeout.
    assert.ok(Date.now() - started < 2500, `closed after ${Date.now() - started}ms`);
  });

  it('send_timeout: a client that stops reading a response is cut and the backend request cancelled; one that reads slowly is not, nor is either by a short idle_timeout', async () => {
    const chunk = Buffer.alloc(64 * 1024, 97);
    const total = 64 * 1024 * 1024;
    const ended: Promise<boolean>[] = [];
    const big = await startBackend('big', (_req, res) => {
      ended.push(new Promise((resolve) => res.once('close', () => resolve(res.writableFinished))));
      res.writeHead(200, { 'content-length': String(total) });
      let sent = 0;
      const pump = (): void => {
        while (sent < total) {
          sent += chunk.length;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
    });
    const readers = await startSwitchyard({
      toml: `
        [server]
        listen = "127.0.0.1:0"
        send_timeout = "300ms"
        idle_timeout = "100ms"
        [pools.web]
        backends = [{ url = "${big.url}" }]
      `,
    });
    const sockets: net.Socket[] = [];
    const open = async (): Promise<net.Socket> => {
      const socket = net.connect(readers.port, '127.0.0.1');
      sockets.push(socket);
      socket.on('error', () => {});
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write('GET /big HTTP/1.1\r\nHost: a\r\n\r\n');
      return socket;
    };
    try {
      const stats = readers.lb.registry.get(big.url)!;
      // Reads ~64 KB every 50 ms, well below what the backend could send: slow, but never stalled for 300 ms.
      const slow = await open();
      slow.pause();
      let read = 0;
      for (let i = 0; i < 20; i++) {
        let budget = 64 * 1024;
        let data: Buffer | null;
        while (budget > 0 && (data = slow.read() as Buffer | null) !== null) {
          read += data.length;
          budget -= data.length;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(!slow.destroyed && slow.readable, 'the slow reader kept its connection');
      assert.ok(read > 512 * 1024, `the slow reader read ${read} bytes`);
      slow.destroy();
      assert.equal(await ended[0], false);

      // Takes the head, then reads nothing: without a limit this would hold the backend connection for good.
      const stalled = await open();
      await new Promise((resolve) => stalled.once('data', resolve));
      stalled.pause();
      const started = Date.now();
      const finishedAtBackend = await within(ended[1]!, 3000, 'the backend response was still being held 3 s after the client stopped reading');
      assert.equal(finishedAtBackend, false, 'the backend response was cut, not completed');
      assert.ok(Date.now() - started >= 250, `cut after ${Date.now() - started}ms`);
      await waitFor(() => stats.active === 0);
    } finally {
      for (const socket of sockets) socket.destroy();
      await readers.close();
      await big.close();
    }
  });

  it('body_timeout: a stalled small upload (read whole first) gets 408 and never reaches the backend', async () => {
    const before = backend.seen.length;
    const started = Date.now();
    const result = await sendRaw(lb.port, 'POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly-part', { timeoutMs: 3000 });
    assert.equal(result.responses[0]?.status, 408, result.text);
    assert.ok(result.closed);
    assert.ok(Date.now() - started < 2000);
    assert.equal(backend.seen.length, before, 'nothing was forwarded');
  });

  it('body_timeout: a stalled streamed upload gets 408, the upstream request is aborted, the connection closes', async () => {
    const before = backend.seen.length;
    const started = Date.now();
    const head = `POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: ${WHOLE_BODY_LIMIT + 100}\r\n\r\n`;
    const result = await sendRaw(lb.port, `${head}${'x'.repeat(1000)}`, { timeoutMs: 3000 });
    assert.equal(result.responses[0]?.status, 408, result.text);
    assert.ok(result.closed);
    assert.ok(Date.now() - started < 2000);
    await waitFor(() => backend.seen.length > before);
    assert.equal(backend.seen.at(-1)!.complete, false, 'the backend saw an aborted upload');
  });
});

describe('backend-side timeouts', () => {
  let blocked: HangingListener;
  let silent: Awaited<ReturnType<typeof startRawBackend>>;
  let stalling: TestBackend;
  let lb: RunningSwitchyard;

  before(async () => {
    blocked = await startHangingListener();
    silent = await startRawBackend((socket) => socket.resume());
    stalling = await startBackend('stalling', (_req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('first part');
    });
    lb = await startSwitchyard({
      toml: `
        [server]
        listen = "127.0.0.1:0"
        [pools.blocked]
        connect_timeout = "100ms"
        passive_failures = 0
        backends = [{ url = "${blocked.url}" }]
        [pools.silent]
        response_timeout = "300ms"
        passive_failures = 0
        backends = [{ url = "${silent.url}" }]
        [pools.stalling]
        response_timeout = "300ms"
        passive_failures = 0
        backends = [{ url = "${stalling.url}" }]
        [[routes]]
        match = { path_prefix = "/blocked" }
        pool = "blocked"
        [[routes]]
        match = { path_prefix = "/silent" }
        pool = "silent"
        [[routes]]
        pool = "stalling"
      `,
    });
  });
  after(async () => {
    await lb?.close();
    await blocked?.close();
    await silent?.close();
    await stalling?.close();
  });

  it('connect_timeout: a backend that does not accept in time → 504, when the timeout says (not at undici\'s ~500 ms timer ticks)', async () => {
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      const res = await fetch(`${lb.url}/blocked`);
      const ms = performance.now() - started;
      assert.equal(res.status, 504);
      assert.match(await res.text(), /connection in time/);
      assert.ok(ms >= 95 && ms < 400, `connect_timeout = "100ms" answered after ${Math.round(ms)}ms`);
    }
  });

  it('response_timeout: a backend that never answers → 504', async () => {
    const started = Date.now();
    const res = await fetch(`${lb.url}/silent`);
    assert.equal(res.status, 504);
    assert.match(await res.text(), /did not answer in time/);
    const ms = Date.now() - started;
    assert.ok(ms >= 250 && ms < 1500, `answered after ${ms}ms`);
  });

  it('a response body that stalls past response_timeout: the client connection is cut', async () => {
    const started = Date.now();
    const result = await sendRaw(lb.port, 'GET /stall HTTP/1.1\r\nHost: a\r\n\r\n', { timeoutMs: 3000 });
    assert.match(result.text, /^HTTP\/1\.1 200/);
    assert.match(result.text, /first part$/);
    assert.equal(result.responses.length, 0, 'the response is visibly incomplete');
    assert.ok(result.closed);
    assert.ok(Date.now() - started < 1500);
  });
});
