/**
 * readWholeBody over a real connection: the body read whole, and
 * failWholeBody ending a read that no event would end (the client's stream
 * broke inside the body and Node forgot the request).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http, { type IncomingMessage } from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { LbError } from '../../src/errors.js';
import { failWholeBody, readWholeBody } from '../../src/server/whole-body.js';
import { within } from '../helpers/waiting.js';

/** A server whose handler hands each request to the test; closed, with its connections, when the test ends. */
async function withServer(run: (port: number, next: () => Promise<IncomingMessage>) => Promise<void>): Promise<void> {
  const waiting: ((req: IncomingMessage) => void)[] = [];
  const server = http.createServer((req, res) => {
    res.on('error', () => {});
    waiting.shift()?.(req);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  try {
    await run((server.address() as AddressInfo).port, () => new Promise((resolve) => waiting.push(resolve)));
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** A PUT whose head and first 5 of its 10 body bytes are sent: the socket, and the request as the server got it. */
async function halfSentPut(port: number, next: () => Promise<IncomingMessage>): Promise<{ socket: net.Socket; req: IncomingMessage }> {
  const arrived = next();
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  socket.write('PUT / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhello');
  return { socket, req: await arrived };
}

test('a body that arrives whole is one Buffer', async () => {
  await withServer(async (port, next) => {
    const { socket, req } = await halfSentPut(port, next);
    const body = readWholeBody(req, 30_000);
    socket.write('world');
    assert.equal((await within(body, 5000, 'the body was not read')).toString(), 'helloworld');
    socket.destroy();
  });
});

test('failWholeBody ends a read that is waiting for the rest of a body, with the error given', async () => {
  await withServer(async (port, next) => {
    const { socket, req } = await halfSentPut(port, next);
    // body_timeout 30 s: only failWholeBody can end it within the test's bound.
    const body = readWholeBody(req, 30_000);
    const refused = new LbError('LB_ERR_BAD_REQUEST');
    failWholeBody(req, refused);
    await assert.rejects(within(body, 1000, 'the read was not failed'), (err: unknown) => err === refused);
    // Nothing to fail any more: a second call is a no-op.
    failWholeBody(req, new LbError('LB_ERR_CLIENT_GONE'));
    socket.destroy();
  });
});
