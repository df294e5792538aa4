// EXPERIMENTAL (a measurement, not production code): undici-minimal.mjs with
// node:http replaced by a hand-written HTTP/1.1 server on net.Server
// (experimental-raw-lib.mjs); upstream is still one undici Pool per backend,
// driven through dispatch() with a handler object, as Switchyard drives it.
// Usage: node experimental-raw-server.mjs PORT http://b1 http://b2 …
import { Pool } from 'undici';
import { AS_IS, ENCODE, HOP, createRawServer } from './experimental-raw-lib.mjs';

const [port, ...origins] = process.argv.slice(2);
const pools = origins.map((o) => new Pool(o, { connections: 128, keepAliveTimeout: 60_000 }));
let next = 0;
const SMALL_TEXT = 4096;

class Exchange {
  constructor(c) {
    this.c = c;
    this.abortFn = undefined;
    this.resumeFn = undefined;
    this.head = undefined; // [status, reason, headers, mode] held until the first body bytes or the end
    this.headSent = false;
    this.held = undefined;
    this.drainListener = undefined;
  }

  onConnect(abort) {
    this.abortFn = abort;
  }

  onHeaders(status, rawHeaders, resume, statusText) {
    if (status < 200) return true;
    this.resumeFn = resume;
    const headers = [];
    let length = false;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i].latin1Slice(0, rawHeaders[i].length);
      const lower = name.length > 17 ? name : name.toLowerCase();
      if (HOP.has(lower)) continue;
      if (lower === 'content-length') {
        if (status === 204) continue;
        length = true;
      }
      headers.push(name, rawHeaders[i + 1].latin1Slice(0, rawHeaders[i + 1].length));
    }
    const bodyless = status === 204 || status === 304 || this.c.headOnly;
    this.head = [status, statusText, headers, length || bodyless ? AS_IS : ENCODE];
    return true;
  }

  #flushHead() {
    const [status, reason, headers, mode] = this.head;
    this.head = undefined;
    this.headSent = true;
    this.c.head(status, reason, headers, mode);
  }

  onData(chunk) {
    if (this.head !== undefined) {
      // Held: if the end comes in the same read, head and body go out in one write.
      if (this.held === undefined && chunk.length <= SMALL_TEXT && this.head[3] === AS_IS) {
        this.held = chunk;
        return true;
      }
      this.#flushHead();
    }
    if (this.held !== undefined) {
      this.c.write(this.held);
      this.held = undefined;
    }
    if (this.c.write(chunk)) return true;
    this.c.whenDrained((this.drainListener ??= () => this.resumeFn?.()));
    return false;
  }

  onComplete() {
    if (this.head !== undefined) {
      const [status, reason, headers, mode] = this.head;
      this.head = undefined;
      this.headSent = true;
      if (mode === AS_IS) {
        this.c.complete(status, reason, headers, this.held);
        return;
      }
      this.c.head(status, reason, headers, mode);
    }
    this.c.end();
  }

  onError(err) {
    if (process.env.RAW_DEBUG) console.error(err);
    this.c.fail(this.headSent);
  }

  abort() {
    this.abortFn?.(new Error('client gone'));
  }
}

const server = createRawServer((c) => {
  const pool = pools[next];
  next = (next + 1) % pools.length;
  const headers = c.headers;
  headers.push('host', c.host ?? new URL(origins[0]).host);
  headers.push('x-forwarded-for', c.xff === undefined ? c.remoteAddress : `${c.xff}, ${c.remoteAddress}`);
  const ex = new Exchange(c);
  c.exchange = ex;
  pool.dispatch({ path: c.target, method: c.method, headers, body: c.body ?? null }, ex);
});
server.listen(Number(port), '127.0.0.1', () => process.send?.('ready'));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
