// EXPERIMENTAL (a measurement, not production code): undici-minimal.mjs with
// undici replaced by a hand-written keep-alive HTTP/1.1 client on net.Socket
// (experimental-raw-lib.mjs). node:http stays in front.
// Usage: node experimental-raw-client.mjs PORT http://b1 http://b2 …
import http from 'node:http';
import { HOP, NONE, RawPool, abortExchange } from './experimental-raw-lib.mjs';

const [port, ...origins] = process.argv.slice(2);
const pools = origins.map((o) => new RawPool(o, { connections: 128 }));
let next = 0;

/** Complete bodies up to this size are written as latin1 text: node:http then sends head + body in one write. */
const SMALL_BODY_AS_TEXT = 4096;

function requestHead(req, pool) {
  const raw = req.rawHeaders;
  let head = `${req.method} ${req.url} HTTP/1.1\r\n`;
  let xff;
  let host = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    const lower = name.length > 17 ? name : name.toLowerCase();
    if (HOP.has(lower)) continue;
    if (lower === 'x-forwarded-for') {
      xff = xff === undefined ? raw[i + 1] : `${xff}, ${raw[i + 1]}`;
      continue;
    }
    if (lower === 'host') host = true;
    head += `${name}: ${raw[i + 1]}\r\n`;
  }
  if (!host) head += `host: ${pool.hostHeader}\r\n`;
  const addr = req.socket.remoteAddress;
  head += `x-forwarded-for: ${xff === undefined ? addr : `${xff}, ${addr}`}\r\n`;
  // A chunked request body is sent de-chunked and re-chunked by us.
  if (req.headers['transfer-encoding'] !== undefined) head += 'transfer-encoding: chunked\r\n';
  return `${head}\r\n`;
}

class Exchange {
  constructor(req, res, head) {
    this.req = req;
    this.res = res;
    this.head = head;
    this.body = undefined;
    this.isHead = req.method === 'HEAD';
    this.passChunked = false;
    this.conn = undefined;
    this.resume = undefined;
    this.resent = false;
    this.cancelled = false;
    this.done = false;
    this.drainListener = undefined;
  }

  onComplete(status, reason, headers, framing, body) {
    this.done = true;
    const res = this.res;
    res.writeHead(status, headers);
    if (framing === NONE || body.length === 0) res.end();
    else if (body.length <= SMALL_BODY_AS_TEXT) res.end(body.latin1Slice(0, body.length), 'latin1');
    else res.end(body);
  }

  onHead(status, reason, headers, framing) {
    this.res.writeHead(status, headers);
  }

  onData(chunk) {
    if (this.res.write(chunk)) return true;
    this.res.once('drain', (this.drainListener ??= () => this.resume?.()));
    return false;
  }

  onEnd() {
    this.done = true;
    this.res.end();
  }

  onError(err) {
    this.done = true;
    const res = this.res;
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' }).end('bad gateway\n');
    else res.destroy(err);
  }
}

const server = http.createServer((req, res) => {
  const pool = pools[next];
  next = (next + 1) % pools.length;
  const ex = new Exchange(req, res, requestHead(req, pool));
  res.once('close', () => {
    if (!ex.done) abortExchange(ex);
  });
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  if (!hasBody) {
    pool.dispatch(ex);
    return;
  }
  // Request bodies are gathered first (an experiment: no request-body streaming here).
  const chunks = [];
  const chunked = req.headers['transfer-encoding'] !== undefined;
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    let body = Buffer.concat(chunks);
    if (chunked) body = Buffer.concat([Buffer.from(body.length > 0 ? `${body.length.toString(16)}\r\n` : ''), body, Buffer.from(body.length > 0 ? '\r\n0\r\n\r\n' : '0\r\n\r\n')]);
    ex.body = body;
    pool.dispatch(ex);
  });
});
server.keepAliveTimeout = 65_000;
server.listen(Number(port), '127.0.0.1', () => process.send?.('ready'));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
