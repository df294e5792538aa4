/**
 * Real HTTP backends on 127.0.0.1 for end-to-end tests. Each answers with its
 * own name so a test can count who served what.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface TestBackend {
  readonly name: string;
  readonly url: string;
  readonly port: number;
  /** Requests served so far. */
  hits: number;
  /** Replace the request handler (default: 200 with the backend's name). */
  handler: http.RequestListener;
  readonly server: http.Server;
  close(): Promise<void>;
}

export async function startBackend(name: string, handler?: http.RequestListener, port = 0): Promise<TestBackend> {
  const backend = {
    name,
    hits: 0,
    handler: handler ?? ((_req: http.IncomingMessage, res: http.ServerResponse) => {
      res.setHeader('content-type', 'text/plain');
      res.end(name);
    }),
  } as TestBackend & { url: string; port: number; server: http.Server };
  const server = http.createServer((req, res) => {
    backend.hits++;
    backend.handler(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const addr = server.address() as AddressInfo;
  backend.server = server;
  backend.port = addr.port;
  backend.url = `http://127.0.0.1:${addr.port}`;
  backend.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return backend;
}

export async function startBackends(count: number, handler?: http.RequestListener): Promise<TestBackend[]> {
  const out: TestBackend[] = [];
  for (let i = 0; i < count; i++) out.push(await startBackend(`b${i + 1}`, handler));
  return out;
}

/** A port that was free a moment ago (the socket is closed again). */
export async function freePort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
