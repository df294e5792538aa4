/**
 * Graceful shutdown of the real CLI (`lb run` as a child process): on
 * SIGTERM it stops accepting, lets in-flight requests finish, closes idle
 * keep-alive connections and exits 0; a second signal exits at once.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBackend, type TestBackend } from '../../src/testing.js';
import { startLb, type LbProcess } from '../helpers/lb-process.js';
import { sendRaw } from '../helpers/raw-http.js';
import { within } from '../helpers/waiting.js';

describe('graceful shutdown (lb run)', () => {
  let backend: TestBackend;
  let dir: string;
  const held: import('node:http').ServerResponse[] = [];
  const running: LbProcess[] = [];

  before(async () => {
    backend = await startBackend('b', (req, res) => {
      if (req.url === '/slow') setTimeout(() => res.end('slow done'), 1000);
      else if (req.url === '/hang') held.push(res);
      else res.end('fast');
    });
    dir = await mkdtemp(join(tmpdir(), 'switchyard-shutdown-'));
  });
  after(async () => {
    for (const lb of running) await lb.stop();
    for (const res of held) res.destroy();
    await backend?.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function start(name: string, args = ['--no-watch']): Promise<LbProcess> {
    const file = join(dir, `${name}.toml`);
    await writeFile(
      file,
      `
      [server]
      listen = "127.0.0.1:0"
      shutdown_grace = "5s"
      [pools.web]
      backends = [{ url = "${backend.url}" }]
      `,
    );
    const lb = await startLb(file, [...args, '--log-level', 'info']);
    running.push(lb);
    return lb;
  }

  it('SIGTERM the moment lb reports listening, its config watcher still starting: the graceful path all the same, exit 0', async () => {
    const lb = await start('early', []);
    const exited = once(lb.child, 'exit');
    lb.child.kill('SIGTERM');
    const [code, signal] = await within(exited, 15_000, `lb did not exit within 15 s of SIGTERM; its output:\n${lb.text.join('\n')}\n${lb.logs.map((l) => l.msg).join('\n')}`);
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, lb.text.join('\n'));
    assert.ok(lb.logs.some((l) => l.msg === 'shutdown complete'));
  });

  it('SIGTERM during a 1 s request: it completes with 200, idle connections close, new ones are refused, exit 0', async () => {
    const lb = await start('graceful');
    // An idle keep-alive connection that must not hold the shutdown up.
    const idle = net.connect(lb.port, '127.0.0.1');
    idle.on('error', () => {});
    const idleClosed = once(idle, 'close');
    idle.write('GET /fast HTTP/1.1\r\nHost: a\r\n\r\n');
    await once(idle, 'data');

    const hitsBefore = backend.hits;
    const slow = sendRaw(lb.port, 'GET /slow HTTP/1.1\r\nHost: a\r\n\r\n', { responses: 1, timeoutMs: 5000 });
    while (backend.hits === hitsBefore) await new Promise((r) => setTimeout(r, 5));
    const exit = once(lb.child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    const signalled = Date.now();
    lb.child.kill('SIGTERM');

    await idleClosed;
    assert.ok(Date.now() - signalled < 500, 'the idle keep-alive connection was closed at once');
    await new Promise((r) => setTimeout(r, 100));
    const refused = await new Promise<string>((resolve) => {
      const s = net.connect(lb.port, '127.0.0.1');
      s.on('connect', () => (s.destroy(), resolve('connected')));
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    });
    assert.equal(refused, 'ECONNREFUSED', 'the listener stopped accepting');

    const result = await slow;
    assert.equal(result.responses[0]?.status, 200, result.text);
    assert.equal(result.responses[0]?.body, 'slow done');
    assert.match(result.responses[0]!.headers.connection ?? '', /close/, 'told the client the connection ends');
    const [code, signal] = await exit;
    assert.equal(signal, null);
    assert.equal(code, 0);
    const took = Date.now() - signalled;
    assert.ok(took >= 800 && took < 3000, `exited ${took}ms after SIGTERM (in-flight request: 1s, grace: 5s)`);
    await lb.waitForLog((l) => l.msg === 'shutdown complete');
  });

  it('SIGTERM while pipelined requests wait behind one in flight: that one completes with Connection: close, the others are never served', async () => {
    const lb = await start('pipelined');
    const hitsBefore = backend.hits;
    const pipelined = sendRaw(lb.port, 'GET /slow HTTP/1.1\r\nHost: a\r\n\r\n' + 'GET /fast HTTP/1.1\r\nHost: a\r\n\r\n'.repeat(2), { timeoutMs: 5000 });
    while (backend.hits === hitsBefore) await new Promise((r) => setTimeout(r, 5));
    const exit = once(lb.child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    lb.child.kill('SIGTERM');
    const result = await pipelined;
    assert.ok(result.closed);
    assert.deepEqual(result.responses.map((r) => r.body), ['slow done'], result.text);
    assert.match(result.responses[0]!.headers.connection ?? '', /close/);
    assert.equal(backend.hits - hitsBefore, 1, 'the waiting requests never reached the backend');
    const [code] = await exit;
    assert.equal(code, 0);
  });

  it('SIGHUP during the graceful shutdown changes nothing and is no error: the request finishes, nothing says a configuration was refused, exit 0', async () => {
    const lb = await start('hup-while-stopping');
    const hitsBefore = backend.hits;
    const slow = sendRaw(lb.port, 'GET /slow HTTP/1.1\r\nHost: a\r\n\r\n', { timeoutMs: 5000 });
    while (backend.hits === hitsBefore) await new Promise((r) => setTimeout(r, 5));
    const exit = once(lb.child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    lb.child.kill('SIGTERM');
    const stopping = lb.logs.indexOf(await lb.waitForLog((l) => /shutting down gracefully/.test(l.msg)));
    // The /slow request holds the shutdown for about a second: the SIGHUP is handled meanwhile.
    lb.child.kill('SIGHUP');
    const result = await slow;
    assert.deepEqual(result.responses.map((r) => r.body), ['slow done'], result.text);
    const [code] = await exit;
    assert.equal(code, 0);
    const since = lb.logs.slice(stopping + 1);
    assert.deepEqual(since.filter((l) => l.level >= 50 || /not applied/.test(l.msg)).map((l) => l.msg), []);
    assert.deepEqual(since.map((l) => l.msg), ['shutdown complete']);
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`a second ${signal} exits at once, without waiting for in-flight requests`, async () => {
      const lb = await start(`twice-${signal}`);
      const hitsBefore = backend.hits;
      const hanging = sendRaw(lb.port, 'GET /hang HTTP/1.1\r\nHost: a\r\n\r\n', { timeoutMs: 5000 });
      while (backend.hits === hitsBefore) await new Promise((r) => setTimeout(r, 5));
      const exit = once(lb.child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
      lb.child.kill(signal);
      await lb.waitForLog((l) => /shutting down gracefully/.test(l.msg));
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(lb.child.exitCode, null, 'still waiting for the in-flight request');
      const again = Date.now();
      lb.child.kill(signal);
      const [code] = await exit;
      assert.ok(Date.now() - again < 1000, `exited ${Date.now() - again}ms after the second signal`);
      assert.equal(code, signal === 'SIGTERM' ? 143 : 130);
      const result = await hanging;
      assert.ok(result.closed);
      assert.equal(result.responses.length, 0, 'the in-flight request was cut');
    });
  }
});
