/**
 * The backend client on its own, against real backends on 127.0.0.1: what
 * the proxy's end-to-end tests cannot see from outside — how many
 * connections it opens and reuses, when it stops reusing one, how a body is
 * framed, what fails a request and what the connection is worth afterwards.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import { setImmediate as nextCheckPhase } from 'node:timers/promises';
import { BackendClient } from '../../src/client/backend-client.js';
import type { BackendRequestOptions, ExchangeHandler, RequestControl } from '../../src/client/exchange-handler.js';
import { createBackendConnector } from '../../src/pool/backend-connector.js';
import { readRequestHead, startRawBackend } from '../helpers/raw-http.js';
import { within } from '../helpers/waiting.js';

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Collects one exchange; `answer` settles with the response or the error. */
class Collector implements ExchangeHandler {
  control: RequestControl | undefined;
  status = 0;
  headers: Record<string, string> = {};
  chunks: Buffer[] = [];
  /** false: pause after each chunk (the test resumes). */
  flowing = true;
  readonly answer: Promise<Answer>;
  #resolve!: (a: Answer) => void;
  #reject!: (e: Error) => void;

  constructor() {
    this.answer = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  onExchangeStart(control: RequestControl): void {
    this.control = control;
  }
  onExchangeHead(statusCode: number, rawHeaders: string[]): void {
    this.status = statusCode;
    for (let i = 0; i < rawHeaders.length; i += 2) this.headers[rawHeaders[i]!.toLowerCase()] = rawHeaders[i + 1]!;
  }
  onExchangeData(chunk: Buffer): boolean {
    this.chunks.push(chunk);
    return this.flowing;
  }
  onExchangeEnd(): void {
    this.#resolve({ status: this.status, headers: this.headers, body: Buffer.concat(this.chunks).toString() });
  }
  onExchangeError(err: Error): void {
    this.#reject(err);
  }
}

function options(overrides: Partial<BackendRequestOptions> = {}): BackendRequestOptions {
  return { method: 'GET', path: '/', headers: { host: 'test' }, body: null, headersTimeout: 5000, bodyTimeout: 5000, ...overrides };
}

function createClient(url: string, connections = 4): BackendClient {
  return new BackendClient(url, { connections, connect: createBackendConnector(2000), keepAliveTimeout: 4000, keepAliveMaxTimeout: 60_000 });
}

/** Sends one request and waits for its whole answer (bounded). */
function send(client: BackendClient, overrides: Partial<BackendRequestOptions> = {}): Promise<Answer> {
  const collector = new Collector();
  client.dispatch(options(overrides), collector as never);
  return within(collector.answer, 5000, 'the answer');
}

interface HttpBackend {
  url: string;
  /** Connections accepted so far, and those open now. */
  accepted: number;
  open: number;
  close(): Promise<void>;
}

async function startHttpBackend(handler: http.RequestListener): Promise<HttpBackend> {
  const sockets = new Set<Socket>();
  const state = { accepted: 0 };
  const server = http.createServer(handler);
  server.on('connection', (socket: Socket) => {
    state.accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get accepted() {
      return state.accepted;
    },
    get open() {
      return sockets.size;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

type TestContext = { after(fn: () => Promise<void> | void): void };

/** A backend and a client to it, both closed when the test ends. */
async function clientTo(t: TestContext, backend: { url: string; close(): Promise<void> }, connections?: number): Promise<BackendClient> {
  const client = createClient(backend.url, connections);
  t.after(async () => {
    await client.destroy();
    await backend.close();
  });
  return client;
}

/** Answers with the method, the framing it saw and the body. */
const ECHO: http.RequestListener = (req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const framing = req.headers['transfer-encoding'] ?? `length ${req.headers['content-length'] ?? 'none'}`;
    res.end(`${req.method} ${framing} ${Buffer.concat(chunks).toString()}`);
  });
};

describe('BackendClient', () => {
  it('reuses one connection for requests in sequence, and opens no more than its limit for requests at once', async (t) => {
    let inFlight = 0;
    let most = 0;
    const backend = await startHttpBackend((req, res) => {
      most = Math.max(most, ++inFlight);
      setTimeout(() => {
        inFlight--;
        res.end('ok');
      }, 20);
    });
    const client = await clientTo(t, backend, 3);
    for (let i = 0; i < 5; i++) assert.equal((await send(client)).body, 'ok');
    assert.equal(backend.accepted, 1, 'one connection, kept alive');
    const answers = await Promise.all(Array.from({ length: 12 }, () => send(client)));
    assert.deepEqual(new Set(answers.map((a) => a.body)), new Set(['ok']));
    assert.equal(most, 3, 'three requests at the backend at most');
    assert.equal(backend.accepted, 3, 'the first connection reused, two more opened, none past the limit');
  });

  it('holds a request written while another is in flight to the end of the event loop turn; a lone one goes at once', async (t) => {
    const backend = await startHttpBackend((_req, res) => res.end('ok'));
    const client = await clientTo(t, backend, 2);
    await Promise.all([send(client), send(client)]);
    assert.equal(backend.accepted, 2, 'two idle connections to take the next two requests at once');
    const lone = new Collector();
    const second = new Collector();
    client.dispatch(options(), lone as never);
    client.dispatch(options(), second as never);
    const socketOf = (c: Collector): Socket => (c.control as unknown as { socket: Socket }).socket;
    // Nothing else was in flight: the first request was handed to the kernel at once.
    assert.equal(socketOf(lone).writableCorked, 0);
    assert.equal(socketOf(lone).writableLength, 0);
    // The second could share its turn with the first one's answer: its head waits in the corked socket.
    assert.equal(socketOf(second).writableCorked, 1);
    assert.ok(socketOf(second).writableLength > 0, 'the head waits in the socket');
    await nextCheckPhase();
    assert.equal(socketOf(second).writableCorked, 0);
    assert.equal(socketOf(second).writableLength, 0, 'the head was handed to the kernel');
    for (const c of [lone, second]) assert.equal((await within(c.answer, 5000, 'the answer')).body, 'ok');
  });

  it('requests that end in every way leave none counted in flight: a lone request afterwards still goes out at once', async (t) => {
    const backend = await startRawBackend(async (socket) => {
      while (!socket.destroyed) {
        const head = await readRequestHead(socket);
        socket.resume();
        if (head.startsWith('GET /silent')) continue;
        if (head.startsWith('GET /cut')) {
          socket.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
          socket.destroy();
          return;
        }
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      }
    });
    const client = await clientTo(t, backend, 1);
    await assert.rejects(send(client, { path: '/silent', headersTimeout: 100 }), { code: 'UND_ERR_HEADERS_TIMEOUT' });
    await assert.rejects(send(client, { path: '/cut' }), { code: 'UND_ERR_SOCKET' });
    const aborted = new Collector();
    client.dispatch(options({ path: '/silent' }), aborted as never);
    await within(
      new Promise<void>((resolve) => {
        const check = setInterval(() => aborted.control !== undefined && (clearInterval(check), resolve()), 5);
      }),
      3000,
      'the aborted request to start',
    );
    aborted.control!.abort(aborted, new Error('aborted by the test'));
    await assert.rejects(aborted.answer, /aborted by the test/);
    assert.equal((await send(client)).body, 'ok', 'an idle connection for the next request');

    const lone = new Collector();
    client.dispatch(options(), lone as never);
    const socket = (lone.control as unknown as { socket: Socket }).socket;
    // A count left above zero by any of those would hold this write to the turn's end.
    assert.equal(socket.writableCorked, 0);
    assert.equal(socket.writableLength, 0);
    assert.equal((await within(lone.answer, 5000, 'the answer')).body, 'ok');
  });

  it('stops reusing a connection when the backend\'s Keep-Alive timeout (less a second) has passed', async (t) => {
    const backend = await startHttpBackend((req, res) => {
      res.setHeader('keep-alive', 'timeout=2');
      res.end('ok');
    });
    // The backend itself keeps idle connections longer than it says, so only the client's own rule can close this one.
    const client = await clientTo(t, backend);
    await send(client);
    await send(client);
    assert.equal(backend.accepted, 1, 'reused within the second it allows');
    await new Promise((resolve) => setTimeout(resolve, 1200));
    await send(client);
    assert.equal(backend.accepted, 2, 'past timeout=2 less a second: a new connection');
  });

  it('frames a streamed body by its declared length, or chunked without one; a Buffer body gets its length', async (t) => {
    const backend = await startHttpBackend(ECHO);
    const client = await clientTo(t, backend);
    const declared = await send(client, { method: 'PUT', headers: { host: 't', 'content-length': '6' }, body: Readable.from([Buffer.from('abc'), Buffer.from('def')]) });
    assert.equal(declared.body, 'PUT length 6 abcdef');
    const chunked = await send(client, { method: 'POST', body: Readable.from([Buffer.from('abc'), Buffer.from('def')]) });
    assert.equal(chunked.body, 'POST chunked abcdef');
    const buffered = await send(client, { method: 'POST', body: Buffer.from('xyz') });
    assert.equal(buffered.body, 'POST length 3 xyz');
    const empty = await send(client, { method: 'POST' });
    assert.equal(empty.body, 'POST length 0 ', 'a POST without a body says so');
    const get = await send(client);
    assert.equal(get.body, 'GET length none ');
    assert.equal(backend.accepted, 1, 'all on one connection');
  });

  it('a streamed body that closes before its first byte fails the request, and the backend sees nothing', async (t) => {
    const heads: string[] = [];
    const backend = await startRawBackend(async (socket) => {
      heads.push(await readRequestHead(socket));
    });
    const client = await clientTo(t, backend);
    const body = new PassThrough();
    const collector = new Collector();
    client.dispatch(options({ method: 'POST', body }), collector as never);
    setImmediate(() => body.destroy());
    await assert.rejects(within(collector.answer, 5000, 'the failure'), { code: 'UND_ERR_ABORTED' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(heads, [], 'no request head was written');
  });

  it('a body that runs past its declared length fails as a length mismatch', async (t) => {
    const backend = await startHttpBackend(ECHO);
    const client = await clientTo(t, backend);
    await assert.rejects(send(client, { method: 'PUT', headers: { host: 't', 'content-length': '2' }, body: Readable.from([Buffer.from('abc')]) }), {
      code: 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH',
    });
  });

  it('a response that comes before the body was sent whole is delivered, and its connection is not reused', async (t) => {
    const backend = await startHttpBackend((req, res) => {
      res.statusCode = 413;
      res.end('too big');
    });
    const client = await clientTo(t, backend);
    const body = new PassThrough();
    body.write('first part');
    const answer = await send(client, { method: 'POST', body });
    assert.deepEqual([answer.status, answer.body], [413, 'too big']);
    assert.ok(body.destroyed, 'the rest of the body is not read');
    await send(client);
    assert.equal(backend.accepted, 2, 'a new connection for the next request');
  });

  it('a request header with CR or LF is refused before a byte is written; the connection stays usable', async (t) => {
    const backend = await startHttpBackend(ECHO);
    const client = await clientTo(t, backend);
    await send(client);
    await assert.rejects(send(client, { headers: { host: 't', 'x-bad': 'a\r\nInjected: yes' } }), { code: 'UND_ERR_INVALID_ARG' });
    await assert.rejects(send(client, { path: '/a b' }), { code: 'UND_ERR_INVALID_ARG' });
    assert.equal((await send(client)).body, 'GET length none ');
    assert.equal(backend.accepted, 1);
  });

  it('times out a response head that does not come, and a body that stalls — but not a body the handler paused', async (t) => {
    const backend = await startRawBackend(async (socket) => {
      while (!socket.destroyed) {
        const head = await readRequestHead(socket);
        socket.resume();
        if (head.startsWith('GET /silent')) return;
        if (head.startsWith('GET /next')) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc');
        else socket.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
        if (head.startsWith('GET /rest-later')) setTimeout(() => socket.write('defghij'), 400);
      }
    });
    const client = await clientTo(t, backend);
    await assert.rejects(send(client, { path: '/silent', headersTimeout: 150 }), { code: 'UND_ERR_HEADERS_TIMEOUT' });
    await assert.rejects(send(client, { path: '/stall', bodyTimeout: 150 }), { code: 'UND_ERR_BODY_TIMEOUT' });

    const paused = new Collector();
    paused.flowing = false;
    client.dispatch(options({ path: '/rest-later', bodyTimeout: 150 }), paused as never);
    await within(
      new Promise<void>((resolve) => {
        const check = setInterval(() => paused.chunks.length > 0 && (clearInterval(check), resolve()), 5);
      }),
      3000,
      'the first chunk',
    );
    // Paused for longer than bodyTimeout: not a stall of the backend's.
    await new Promise((resolve) => setTimeout(resolve, 600));
    paused.control!.resume(paused);
    assert.equal((await within(paused.answer, 3000, 'the paused answer')).body, 'abcdefghij');
    // It ended paused on its last bytes; the connection it leaves must read the next answer.
    assert.equal((await send(client, { path: '/next' })).body, 'abc', 'a reused connection that reads again');
  });

  // A whole stray response, and a partial head: one the parser would keep and prefix to the next answer.
  const STRAY = { 'a whole response': 'HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled', 'half a head': 'HTTP/1.1 200 OK\r\nX-Smuggled: 1\r\n' };
  for (const [what, stray] of Object.entries(STRAY)) {
    it(`bytes on an idle connection (${what}) close it: they never become the next request's answer`, async (t) => {
      let served = 0;
      const backend = await startRawBackend(async (socket) => {
        while (!socket.destroyed) {
          await readRequestHead(socket);
          served++;
          socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nanswer${served}`);
          if (served === 1) setTimeout(() => socket.write(stray), 30);
        }
      });
      const client = await clientTo(t, backend);
      assert.equal((await send(client)).body, 'answer1');
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal((await send(client)).body, 'answer2');
      assert.equal(backend.connections, 2, 'the tainted connection was dropped');
    });
  }

  it('close() waits for the request in flight; destroy() fails what is left', async (t) => {
    const backend = await startHttpBackend((req, res) => {
      if (req.url === '/slow') setTimeout(() => res.end('slow'), 150);
      // '/never' is never answered.
    });
    const client = createClient(backend.url);
    const other = createClient(backend.url);
    t.after(async () => {
      await client.destroy();
      await other.destroy();
      await backend.close();
    });
    const slow = send(client, { path: '/slow' });
    await new Promise((resolve) => setTimeout(resolve, 20));
    await within(client.close(), 3000, 'close');
    assert.equal((await slow).body, 'slow', 'answered before close() resolved');
    await assert.rejects(send(client), { code: 'UND_ERR_CLOSED' });

    const never = assert.rejects(send(other, { path: '/never' }), { code: 'UND_ERR_DESTROYED' });
    await new Promise((resolve) => setTimeout(resolve, 20));
    await within(other.destroy(), 3000, 'destroy');
    await never;
  });

  it('a backend that refuses connections fails each waiting request with the reason', async (t) => {
    const backend = await startHttpBackend(ECHO);
    const url = backend.url;
    await backend.close();
    const client = createClient(url, 2);
    t.after(() => client.destroy());
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => send(client)));
    assert.deepEqual(
      results.map((r) => (r.status === 'rejected' ? (r.reason as { code?: string }).code : 'answered')),
      Array(5).fill('ECONNREFUSED'),
    );
  });
});
