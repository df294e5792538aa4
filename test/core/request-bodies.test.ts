/**
 * Small Content-Length bodies are read whole before forwarding; larger and
 * chunked ones stream. Both must reach the backend byte for byte.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { WHOLE_BODY_LIMIT } from '../../src/server/whole-body.js';
import { startSwitchyard, type RunningSwitchyard } from '../../src/testing.js';
import { sendRaw, startCapturingBackend, type CapturingBackend } from '../helpers/raw-http.js';

describe('request bodies', () => {
  let backend: CapturingBackend;
  let lb: RunningSwitchyard;

  before(async () => {
    backend = await startCapturingBackend();
    lb = await startSwitchyard({
      toml: `
        [server]
        listen = "127.0.0.1:0"
        body_timeout = "1s"
        [pools.web]
        backends = [{ url = "${backend.url}" }]
      `,
    });
  });
  after(async () => {
    await lb?.close();
    await backend?.close();
  });

  it('a small body sent in pieces arrives whole, once, with its Content-Length', async () => {
    const body = 'abcdefghij'.repeat(300);
    const head = `POST /small HTTP/1.1\r\nHost: a\r\nContent-Length: ${body.length}\r\n\r\n`;
    const before = backend.seen.length;
    const result = await sendRaw(lb.port, [head, body.slice(0, 1000), body.slice(1000, 2000), body.slice(2000)], {
      gapMs: 50,
      responses: 1,
    });
    assert.equal(result.responses[0]?.status, 200, result.text);
    assert.equal(backend.seen.length, before + 1);
    const seen = backend.seen.at(-1)!;
    assert.equal(seen.body, body);
    assert.equal(seen.headers['content-length'], String(body.length));
  });

  it('a body at the whole-body limit and one just over it both arrive intact', async () => {
    for (const size of [WHOLE_BODY_LIMIT, WHOLE_BODY_LIMIT + 1]) {
      const body = Buffer.alloc(size);
      for (let i = 0; i < size; i++) body[i] = i % 251;
      const response = await fetch(`${lb.url}/size-${size}`, { method: 'POST', body });
      assert.equal(response.status, 200);
      await response.text();
      const seen = backend.seen.at(-1)!;
      assert.equal(seen.url, `/size-${size}`);
      assert.ok(Buffer.from(seen.body, 'latin1').equals(body), `${size} bytes arrived intact`);
    }
  });

  it('a client that leaves in the middle of a small body: nothing is forwarded, the proxy keeps serving', async () => {
    const before = backend.seen.length;
    const socket = net.connect(lb.port, '127.0.0.1');
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('connect', resolve));
    // The write callback: the partial request is in the kernel (on loopback: delivered) before the client leaves.
    await new Promise((resolve) => socket.write('POST /left HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\nonly-a-little', resolve));
    socket.destroy();
    const after = await fetch(`${lb.url}/after`);
    assert.equal(after.status, 200);
    await after.text();
    assert.deepEqual(
      backend.seen.slice(before).map((s) => s.url),
      ['/after'],
      'the abandoned request never reached the backend',
    );
  });
});
