/**
 * Three small demo backends for the quick start: each answers with its own
 * name, and /healthz answers 200.
 */
import http from 'node:http';

export interface DemoBackend {
  readonly name: string;
  readonly port: number;
  readonly server: http.Server;
}

export async function startDemoBackends(ports: readonly number[], host = '127.0.0.1'): Promise<DemoBackend[]> {
  const started: DemoBackend[] = [];
  for (let i = 0; i < ports.length; i++) {
    const name = `backend-${i + 1}`;
    const port = ports[i]!;
    const server = http.createServer((req, res) => {
      if (req.url === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
        return;
      }
      req.resume();
      const body = `Hello from ${name} (port ${port}): ${req.method} ${req.url}\n`;
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'x-backend': name }).end(body);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(err.code === 'EADDRINUSE' ? new Error(`demo backend port ${port} is in use: stop what runs there, or edit lb.toml and demo/start.ts`) : err),
      );
      server.listen(port, host, () => resolve());
    });
    started.push({ name, port, server });
  }
  return started;
}
