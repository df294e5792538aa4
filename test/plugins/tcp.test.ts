import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { HealthDefinition, HealthTarget, PluginApi } from '../../src/index.js';
import tcpPlugin from '../../plugins/tcp.js';
import { freePort } from '../helpers/backends.js';

/** Through the contract, as the core calls it. */
const tcp: HealthDefinition = tcpPlugin;
const api = { pluginName: 'tcp' } as PluginApi;

function targetOf(port: number): HealthTarget {
  return { url: `http://127.0.0.1:${port}`, protocol: 'http:', hostname: '127.0.0.1', port };
}

/** A plain TCP listener that accepts and says nothing (not HTTP at all). */
async function silentListener(): Promise<{ port: number; accepted: () => number; close(): Promise<void> }> {
  let accepted = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as AddressInfo).port,
    accepted: () => accepted,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

test('schema: no options, unknown keys rejected', () => {
  assert.deepEqual(tcp.schema, { type: 'object', additionalProperties: false, properties: {} });
});

test('an accepted connection is healthy, whatever the port speaks; the socket is closed again', async (t) => {
  const listener = await silentListener();
  t.after(() => listener.close());
  const instance = await tcp.create({}, api);
  const result = await instance.check(targetOf(listener.port), new AbortController().signal);
  assert.deepEqual(result, { healthy: true, reason: 'connection accepted' });
  assert.equal(listener.accepted(), 1);
});

test('a closed port rejects with ECONNREFUSED', async () => {
  const instance = await tcp.create({}, api);
  const port = await freePort();
  await assert.rejects(instance.check(targetOf(port), new AbortController().signal), { code: 'ECONNREFUSED' });
});

test('an already aborted signal rejects without connecting', async (t) => {
  const listener = await silentListener();
  t.after(() => listener.close());
  const instance = await tcp.create({}, api);
  const controller = new AbortController();
  controller.abort(new DOMException('timed out', 'TimeoutError'));
  await assert.rejects(instance.check(targetOf(listener.port), controller.signal), { name: 'TimeoutError' });
  assert.equal(listener.accepted(), 0);
});
