/**
 * Raw HTTP/1.x over node:net for protocol tests: send exact bytes, read
 * exactly what comes back, and see whether the server closed the
 * connection. `parseResponses` splits what came back into complete
 * responses (Content-Length, chunked, or a body ended by the close).
 */
import net from 'node:net';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RawResponse {
  readonly status: number;
  /** Header names lower-cased; repeated ones joined with ", ". */
  readonly headers: Record<string, string>;
  /** Raw header lines as received, for checks on exact framing. */
  readonly head: string;
  readonly body: string;
}

export interface RawResult {
  /** Everything received, latin1. */
  readonly text: string;
  /** The server closed the connection before we stopped listening. */
  readonly closed: boolean;
  readonly responses: RawResponse[];
}

export interface SendRawOptions {
  /** Stop listening once this many complete responses arrived (default: wait for the close or the timeout). */
  readonly responses?: number;
  /** Longest wait, ms (default 2000). */
  readonly timeoutMs?: number;
  /** Written one after another, `gapMs` apart (default 0). */
  readonly gapMs?: number;
}

/**
 * Complete responses at the start of `text`. A 1xx/204/304 has no body, nor
 * has the answer to a HEAD: `methods` lists the requests' methods in order.
 */
export function parseResponses(text: string, closed = false, methods: readonly string[] = []): RawResponse[] {
  const out: RawResponse[] = [];
  let at = 0;
  let final = 0;
  while (at < text.length) {
    const headEnd = text.indexOf('\r\n\r\n', at);
    if (headEnd === -1) break;
    const head = text.slice(at, headEnd);
    const lines = head.split('\r\n');
    const status = Number(lines[0]!.split(' ')[1]);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    let bodyStart = headEnd + 4;
    let body = '';
    if (status < 200) {
      out.push({ status, headers, head, body });
      at = bodyStart;
      continue;
    }
    const noBody = status === 204 || status === 304 || methods[final] === 'HEAD';
    final++;
    if (noBody) {
      // nothing
    } else if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length']);
      if (text.length - bodyStart < length) break;
      body = text.slice(bodyStart, bodyStart + length);
      bodyStart += length;
    } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      let pos = bodyStart;
      let complete = false;
      while (true) {
        const sizeEnd = text.indexOf('\r\n', pos);
        if (sizeEnd === -1) break;
        const size = parseInt(text.slice(pos, sizeEnd), 16);
        if (Number.isNaN(size)) break;
        if (size === 0) {
          const end = text.indexOf('\r\n\r\n', sizeEnd);
          if (end === -1) break;
          pos = end + 4;
          complete = true;
          break;
        }
        if (text.length < sizeEnd + 2 + size + 2) break;
        body += text.slice(sizeEnd + 2, sizeEnd + 2 + size);
        pos = sizeEnd + 2 + size + 2;
      }
      if (!complete) break;
      bodyStart = pos;
    } else {
      if (!closed) break;
      body = text.slice(bodyStart);
      bodyStart = text.length;
    }
    out.push({ status, headers, head, body });
    at = bodyStart;
  }
  return out;
}

/** Sends `payload` on a new connection to 127.0.0.1:`port` and collects the answer. */
export function sendRaw(port: number, payload: string | Buffer | readonly (string | Buffer)[], options: SendRawOptions = {}): Promise<RawResult> {
  const { responses, timeoutMs = 2000, gapMs = 0 } = options;
  const pieces = Array.isArray(payload) ? payload : [payload as string | Buffer];
  const methods = pieces
    .join('')
    .split(/\r\n/)
    .filter((l) => /^[A-Z]+ \S+ HTTP\/\d\.\d$/.test(l))
    .map((l) => l.split(' ')[0]!);
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let closed = false;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      resolve({ text, closed, responses: parseResponses(text, closed, methods) });
    };
    const timer = setTimeout(finish, timeoutMs);
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      if (responses !== undefined) {
        const parsed = parseResponses(Buffer.concat(chunks).toString('latin1'), false, methods);
        if (parsed.filter((r) => r.status >= 200).length >= responses) finish();
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      closed = true;
      finish();
    });
    socket.on('connect', async () => {
      for (let i = 0; i < pieces.length; i++) {
        if (i > 0 && gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
        if (socket.destroyed) return;
        socket.write(typeof pieces[i] === 'string' ? Buffer.from(pieces[i] as string, 'latin1') : (pieces[i] as Buffer));
      }
    });
  });
}

/** What a capturing backend saw of one request. */
export interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly rawHeaders: string[];
  readonly body: string;
  /** The request ended cleanly (false: aborted mid-body). */
  readonly complete: boolean;
}

export interface CapturingBackend {
  readonly url: string;
  readonly port: number;
  readonly seen: SeenRequest[];
  /** Answers every request after its body: 200, the body "ok <url>". Replace to change. */
  respond: (req: http.IncomingMessage, res: http.ServerResponse, seen: SeenRequest) => void;
  close(): Promise<void>;
}

/** A backend that records every request it receives (method, target, headers, body) before answering. */
export async function startCapturingBackend(): Promise<CapturingBackend> {
  const seen: SeenRequest[] = [];
  const backend = {
    seen,
    respond: (_req: http.IncomingMessage, res: http.ServerResponse, s: SeenRequest) => {
      res.setHeader('content-type', 'text/plain');
      res.end(`ok ${s.url}`);
    },
  } as CapturingBackend & { url: string; port: number; close(): Promise<void> };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    const record = (complete: boolean) => {
      const entry: SeenRequest = {
        method: req.method!,
        url: req.url!,
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body: Buffer.concat(chunks).toString('latin1'),
        complete,
      };
      seen.push(entry);
      return entry;
    };
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => backend.respond(req, res, record(true)));
    req.on('aborted', () => record(false));
    req.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  backend.port = port;
  backend.url = `http://127.0.0.1:${port}`;
  backend.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return backend;
}

/** A raw TCP backend: `onConnection` gets each accepted socket (for backends that misbehave on purpose). */
export async function startRawBackend(onConnection: (socket: net.Socket) => void): Promise<{ url: string; port: number; connections: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const state = { connections: 0 };
  const server = net.createServer((socket) => {
    state.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.setNoDelay(true);
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get connections() {
      return state.connections;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Reads one HTTP request head from a raw socket (resolves with the head text; the rest stays unread). */
export function readRequestHead(socket: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const onData = (d: Buffer) => {
      text += d.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end !== -1) {
        socket.off('data', onData);
        socket.pause();
        const rest = text.slice(end + 4);
        if (rest.length > 0) socket.unshift(Buffer.from(rest, 'latin1'));
        resolve(text.slice(0, end));
      }
    };
    socket.on('data', onData);
  });
}
