// The baseline Switchyard is held to: the proxy a competent Node developer
// writes by hand in an afternoon. node:http in front, one keep-alive undici
// Pool per backend, round-robin, streaming both ways via pool.stream() (the
// undici API that writes straight into a Writable, no intermediate Readable).
// Usage: node undici-minimal.mjs PORT http://b1 http://b2 …
import http from 'node:http';
import { Pool } from 'undici';

const [port, ...origins] = process.argv.slice(2);
const pools = origins.map((o) => new Pool(o, { connections: 128, keepAliveTimeout: 60_000 }));
let next = 0;

// Hop-by-hop headers (RFC 9110 §7.6.1) never cross a proxy; undici rejects some of them anyway.
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

function requestHeaders(req) {
  const raw = req.rawHeaders;
  const out = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (!HOP.has(name)) out[name] = raw[i + 1];
  }
  const xff = out['x-forwarded-for'];
  out['x-forwarded-for'] = xff ? `${xff}, ${req.socket.remoteAddress}` : req.socket.remoteAddress;
  return out;
}

function responseHeaders(headers) {
  for (const name of HOP) delete headers[name];
  return headers;
}

const server = http.createServer((req, res) => {
  const pool = pools[next];
  next = (next + 1) % pools.length;
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  pool.stream(
    { path: req.url, method: req.method, headers: requestHeaders(req), body: hasBody ? req : null, opaque: res },
    ({ statusCode, headers, opaque }) => {
      opaque.writeHead(statusCode, responseHeaders(headers));
      return opaque;
    },
    (err) => {
      if (!err) return;
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' }).end('bad gateway\n');
      else res.destroy(err);
    },
  );
});
server.keepAliveTimeout = 65_000; // behind a load generator or an L4 balancer, outlive its idle timeout
server.listen(Number(port), '127.0.0.1', () => process.send?.('ready'));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
