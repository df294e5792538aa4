// EXPERIMENTAL (a measurement, not production code): the ceiling of a Node
// proxy — a hand-written HTTP/1.1 server on net.Server in front and a
// hand-written keep-alive client on net.Socket behind (experimental-raw-lib.mjs),
// no node:http and no undici. Chunked responses pass through as they are.
// Usage: node experimental-raw-both.mjs PORT http://b1 http://b2 …
import { CHUNKED, ENCODE, AS_IS, PASS_CHUNKED, CLOSE, RawPool, abortExchange, createRawServer } from './experimental-raw-lib.mjs';

const [port, ...origins] = process.argv.slice(2);
const pools = origins.map((o) => new RawPool(o, { connections: 128 }));
let next = 0;

function requestHead(c, pool) {
  let head = `${c.method} ${c.target} HTTP/1.1\r\nhost: ${c.host ?? pool.hostHeader}\r\n`;
  const h = c.headers;
  for (let i = 0; i < h.length; i += 2) head += `${h[i]}: ${h[i + 1]}\r\n`;
  if (c.body !== undefined) head += `content-length: ${c.body.length}\r\n`;
  return `${head}x-forwarded-for: ${c.xff === undefined ? c.remoteAddress : `${c.xff}, ${c.remoteAddress}`}\r\n\r\n`;
}

class Exchange {
  constructor(c, head) {
    this.c = c;
    this.head = head;
    this.body = c.body;
    this.isHead = c.headOnly;
    this.passChunked = true;
    this.conn = undefined;
    this.resume = undefined;
    this.resent = false;
    this.cancelled = false;
    this.headSent = false;
    this.drainListener = undefined;
  }

  onComplete(status, reason, headers, framing, body) {
    this.c.complete(status, reason, headers, body);
  }

  onHead(status, reason, headers, framing) {
    this.headSent = true;
    this.c.head(status, reason, headers, framing === CHUNKED ? PASS_CHUNKED : framing === CLOSE ? ENCODE : AS_IS);
  }

  onData(chunk) {
    if (this.c.write(chunk)) return true;
    this.c.whenDrained((this.drainListener ??= () => this.resume?.()));
    return false;
  }

  onEnd() {
    this.c.end();
  }

  onError() {
    this.c.fail(this.headSent);
  }

  abort() {
    abortExchange(this);
  }
}

const server = createRawServer((c) => {
  const pool = pools[next];
  next = (next + 1) % pools.length;
  const ex = new Exchange(c, requestHead(c, pool));
  c.exchange = ex;
  pool.dispatch(ex);
});
server.listen(Number(port), '127.0.0.1', () => process.send?.('ready'));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
