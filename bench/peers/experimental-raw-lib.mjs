// EXPERIMENTAL, not production code: the pieces shared by the
// bench/peers/experimental-raw-*.mjs proxies, written to measure how much a
// hand-written HTTP/1.1 upstream client (instead of undici) and a
// hand-written server (instead of node:http) could save per request.
//
// What is here: a keep-alive upstream connection pool on net.Socket with a
// JS response parser (status line, headers into a flat array, Content-Length,
// chunked (de-chunked or passed through), close-delimited bodies, 1xx
// skipped, HEAD/204/304 bodiless, responses split anywhere across reads), and
// a request-head parser for the raw server. What is NOT here (on purpose):
// timeouts of any kind, TLS, Upgrade, trailers, Connection-listed hop-by-hop
// headers, request smuggling defences beyond rejecting what it cannot frame.
import net from 'node:net';

/** Hop-by-hop headers (RFC 9110 §7.6.1), lower case. */
export const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/** How a response body is framed. */
export const NONE = 0; // no body (HEAD, 1xx, 204, 304, Content-Length: 0)
export const LENGTH = 1; // Content-Length
export const CHUNKED = 2; // Transfer-Encoding: chunked
export const CLOSE = 3; // until the connection closes

const S_HEAD = 0;
const S_LENGTH = 1;
const S_CHUNKED = 2;
const S_CLOSE = 3;
const S_DONE = 4;

const C_SIZE = 0;
const C_DATA = 1;
const C_DATA_CR = 2;
const C_DATA_LF = 3;
const C_TRAILER = 4;

const MAX_HEAD = 64 * 1024;
/**
 * RAW_TIMEOUT_MS=N (env): one timer per upstream connection, refreshed when
 * a request is sent and at every read; when it fires the request in flight
 * fails (a headers/body timeout) or the idle connection is closed. Off by
 * default; on, it shows what such timeouts cost per request.
 */
const TIMEOUT_MS = Number(process.env.RAW_TIMEOUT_MS ?? 0);

function connTimedOut(conn) {
  if (conn.exchange !== undefined) conn.fail(new ProtocolError('upstream timed out'));
  else conn.destroy();
}
const EMPTY = Buffer.alloc(0);

export class ProtocolError extends Error {}

/**
 * The exchange interface a caller hands to RawPool.dispatch():
 *   head: string               request head, CRLFCRLF included (written latin1)
 *   body: Buffer | undefined   a request body, already complete (written after the head)
 *   isHead: boolean            HEAD request: the response has no body whatever it says
 *   passChunked: boolean       give chunked bodies to onData raw (framing included) instead of de-chunked
 *   onComplete(status, reason, headers, framing, body)  whole response in one read (framing LENGTH or NONE)
 *   onHead(status, reason, headers, framing)            otherwise: head, then
 *   onData(chunk) -> boolean   false: pause the upstream socket until resume() is called
 *   onEnd()
 *   onError(err)               before or after the head
 * Set by the pool: exchange.resume (a function) once it is on a connection.
 */

/** A chunked-body decoder that tolerates any split; reports where the message ends. */
class Chunked {
  state = C_SIZE;
  line = '';
  remaining = 0;

  /**
   * Consumes b[i..]; calls emit(slice) for decoded data (unless raw). Returns
   * the offset just past the message's end, or -1 when it needs more.
   */
  feed(b, i, emit, raw) {
    const len = b.length;
    while (i < len) {
      switch (this.state) {
        case C_SIZE: {
          const nl = b.indexOf(10, i);
          if (nl === -1) {
            this.line += b.latin1Slice(i, len);
            if (this.line.length > 1024) throw new ProtocolError('chunk size line too long');
            return -1;
          }
          let line = this.line + b.latin1Slice(i, nl);
          this.line = '';
          i = nl + 1;
          if (line.charCodeAt(line.length - 1) !== 13) throw new ProtocolError('chunk size line without CR');
          const semi = line.indexOf(';');
          line = semi === -1 ? line.slice(0, -1) : line.slice(0, semi);
          if (!/^[0-9a-fA-F]{1,12}$/.test(line)) throw new ProtocolError('bad chunk size');
          const size = parseInt(line, 16);
          if (size === 0) this.state = C_TRAILER;
          else {
            this.remaining = size;
            this.state = C_DATA;
          }
          break;
        }
        case C_DATA: {
          const n = Math.min(this.remaining, len - i);
          if (!raw) emit(b.subarray(i, i + n));
          i += n;
          this.remaining -= n;
          if (this.remaining === 0) this.state = C_DATA_CR;
          break;
        }
        case C_DATA_CR:
          if (b[i++] !== 13) throw new ProtocolError('chunk data without CRLF');
          this.state = C_DATA_LF;
          break;
        case C_DATA_LF:
          if (b[i++] !== 10) throw new ProtocolError('chunk data without CRLF');
          this.state = C_SIZE;
          break;
        case C_TRAILER: {
          const nl = b.indexOf(10, i);
          if (nl === -1) {
            this.line += b.latin1Slice(i, len);
            if (this.line.length > 8192) throw new ProtocolError('trailer too long');
            return -1;
          }
          const line = this.line + b.latin1Slice(i, nl);
          this.line = '';
          i = nl + 1;
          if (line === '\r') {
            this.state = C_SIZE;
            return i;
          }
          break; // a trailer field: dropped
        }
      }
    }
    return -1;
  }
}

/** One keep-alive connection to a backend. */
class Conn {
  constructor(pool) {
    this.pool = pool;
    this.exchange = undefined;
    this.buf = EMPTY;
    this.state = S_HEAD;
    this.remaining = 0;
    this.chunked = undefined;
    this.keepAlive = true;
    this.usedBefore = false; // served a response before the current exchange: may be stale
    this.gotBytes = false; // a byte of the current exchange's response arrived
    this.headSent = false; // onHead/onComplete called for the current exchange
    this.closed = false;
    const socket = net.connect({ host: pool.host, port: pool.port, noDelay: true });
    this.socket = socket;
    socket.on('data', (b) => this.onBytes(b));
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.onClose());
    this.resume = () => socket.resume();
    this.timer = TIMEOUT_MS > 0 ? setTimeout(connTimedOut, TIMEOUT_MS, this).unref() : undefined;
  }

  assign(exchange) {
    this.exchange = exchange;
    this.state = S_HEAD;
    this.gotBytes = false;
    this.headSent = false;
    exchange.resume = this.resume;
    exchange.conn = this;
    this.timer?.refresh();
    const socket = this.socket;
    if (exchange.body === undefined || exchange.body.length === 0) socket.write(exchange.head, 'latin1');
    else {
      socket.cork();
      socket.write(exchange.head, 'latin1');
      socket.write(exchange.body);
      socket.uncork();
    }
  }

  onBytes(b) {
    const ex = this.exchange;
    if (ex === undefined) {
      // Bytes on an idle connection: nothing may come unasked.
      this.socket.destroy();
      return;
    }
    this.gotBytes = true;
    this.timer?.refresh();
    try {
      this.parse(b, ex);
    } catch (err) {
      this.fail(err);
    }
  }

  parse(b, ex) {
    let i = 0;
    if (this.state === S_HEAD) {
      if (this.buf.length > 0) {
        b = Buffer.concat([this.buf, b]);
        this.buf = EMPTY;
      }
      for (;;) {
        const end = b.indexOf('\r\n\r\n', i, 'latin1');
        if (end === -1) {
          if (b.length - i > MAX_HEAD) throw new ProtocolError('response head too large');
          this.buf = i === 0 ? b : b.subarray(i);
          return;
        }
        const status = this.parseHead(b.latin1Slice(i, end), ex);
        i = end + 4;
        if (status >= 200) break;
        // 1xx: interim, skipped (101 is refused in parseHead).
        if (i === b.length) return;
      }
      const framing = this.framing;
      const headers = this.headers;
      const reason = this.reason;
      const status = this.status;
      this.headers = undefined;
      this.headSent = true;
      if (framing === NONE) {
        this.finish(b, i);
        ex.onComplete(status, reason, headers, NONE, EMPTY);
        return;
      }
      if (framing === LENGTH && b.length - i >= this.remaining) {
        const body = b.subarray(i, i + this.remaining);
        this.finish(b, i + this.remaining);
        ex.onComplete(status, reason, headers, LENGTH, body);
        return;
      }
      ex.onHead(status, reason, headers, framing);
      if (this.exchange !== ex) return; // the callback cancelled it
      this.state = framing === LENGTH ? S_LENGTH : framing === CHUNKED ? S_CHUNKED : S_CLOSE;
      if (framing === CHUNKED) this.chunked = new Chunked();
      if (i === b.length) return;
    }
    this.body(b, i, ex);
  }

  body(b, i, ex) {
    switch (this.state) {
      case S_LENGTH: {
        const n = Math.min(this.remaining, b.length - i);
        this.remaining -= n;
        const slice = i === 0 && n === b.length ? b : b.subarray(i, i + n);
        if (this.remaining === 0) {
          this.finish(b, i + n);
          if (n > 0) ex.onData(slice);
          ex.onEnd();
        } else if (!ex.onData(slice)) this.socket.pause();
        return;
      }
      case S_CHUNKED: {
        let writable = true;
        const end = this.chunked.feed(b, i, (s) => (writable = ex.onData(s) && writable), ex.passChunked);
        if (ex.passChunked) {
          const stop = end === -1 ? b.length : end;
          writable = ex.onData(i === 0 && stop === b.length ? b : b.subarray(i, stop));
        }
        if (end !== -1) {
          this.finish(b, end);
          ex.onEnd();
        } else if (!writable) this.socket.pause();
        return;
      }
      case S_CLOSE:
        if (!ex.onData(i === 0 ? b : b.subarray(i))) this.socket.pause();
        return;
    }
  }

  /** Sets status/reason/headers/framing/remaining/keepAlive from a head (without its CRLFCRLF); returns the status. */
  parseHead(text, ex) {
    // HTTP/1.x SSS reason
    if (!text.startsWith('HTTP/1.') || text.charCodeAt(8) !== 32) throw new ProtocolError('bad status line');
    const minor = text.charCodeAt(7) - 48;
    const status = (text.charCodeAt(9) - 48) * 100 + (text.charCodeAt(10) - 48) * 10 + (text.charCodeAt(11) - 48);
    if (!(status >= 100 && status <= 999)) throw new ProtocolError('bad status code');
    let eol = text.indexOf('\r\n');
    if (eol === -1) eol = text.length;
    const reason = text.slice(13, eol);
    const headers = [];
    let length = -1;
    let chunked = false;
    let hasTe = false;
    let connClose = minor === 0;
    let pos = eol + 2;
    while (pos < text.length) {
      let next = text.indexOf('\r\n', pos);
      if (next === -1) next = text.length;
      const colon = text.indexOf(':', pos);
      if (colon === -1 || colon > next || colon === pos) throw new ProtocolError('bad header line');
      const c0 = text.charCodeAt(pos);
      if (c0 === 32 || c0 === 9) throw new ProtocolError('obsolete line folding');
      const name = text.slice(pos, colon);
      const value = text.slice(colon + 1, next).trim();
      pos = next + 2;
      const lower = name.length > 17 ? name : name.toLowerCase(); // every name checked below is ≤ 17 chars
      if (lower === 'content-length') {
        if (!/^\d{1,15}$/.test(value)) throw new ProtocolError('bad content-length');
        const n = Number(value);
        if (length !== -1 && length !== n) throw new ProtocolError('conflicting content-length');
        length = n;
        headers.push(name, value);
        continue;
      }
      if (HOP.has(lower)) {
        if (lower === 'transfer-encoding') {
          hasTe = true;
          chunked = /(?:^|,)\s*chunked\s*$/i.test(value);
        } else if (lower === 'connection') {
          const v = value.toLowerCase();
          if (v.includes('close')) connClose = true;
          else if (minor === 0 && v.includes('keep-alive')) connClose = false;
        }
        continue;
      }
      headers.push(name, value);
    }
    this.status = status;
    if (status < 200) {
      if (status === 101) throw new ProtocolError('upgrade not supported');
      return status;
    }
    this.reason = reason;
    this.keepAlive = !connClose;
    if (ex.isHead || status === 204 || status === 304) {
      this.framing = NONE;
      if (status === 204) for (let k = 0; k < headers.length; k += 2) if (headers[k].toLowerCase() === 'content-length') headers.splice(k, 2);
    } else if (hasTe) {
      // Transfer-Encoding overrides Content-Length (RFC 9112 §6.3), which is dropped.
      if (length !== -1) for (let k = 0; k < headers.length; k += 2) if (headers[k].toLowerCase() === 'content-length') headers.splice(k, 2);
      if (chunked) this.framing = CHUNKED;
      else {
        this.framing = CLOSE;
        this.keepAlive = false;
      }
    } else if (length !== -1) {
      this.framing = length === 0 ? NONE : LENGTH;
      this.remaining = length;
    } else {
      this.framing = CLOSE;
      this.keepAlive = false;
    }
    this.headers = headers;
    return status;
  }

  /** The response ended at b[end]: the connection goes back to the pool (or closes). */
  finish(b, end) {
    this.state = S_DONE;
    this.exchange.conn = undefined;
    this.exchange = undefined;
    this.chunked = undefined;
    this.buf = EMPTY;
    this.socket.resume();
    if (end < b.length || !this.keepAlive) {
      // Bytes past the response (no pipelining here) or Connection: close.
      this.destroy();
      return;
    }
    this.usedBefore = true;
    this.pool.release(this);
  }

  fail(err) {
    const ex = this.exchange;
    this.destroy();
    if (ex === undefined) return;
    ex.conn = undefined;
    // A reused keep-alive socket that died before a byte came back: the
    // backend closed it as we reused it; send once more on another.
    if (!this.gotBytes && this.usedBefore && !ex.resent) {
      ex.resent = true;
      this.pool.dispatch(ex);
      return;
    }
    ex.onError(err);
  }

  onClose() {
    if (this.closed && this.exchange === undefined) return;
    const ex = this.exchange;
    if (ex !== undefined && this.state === S_CLOSE) {
      this.exchange = undefined;
      ex.conn = undefined;
      this.destroy();
      ex.onEnd();
      return;
    }
    this.fail(new ProtocolError('upstream closed the connection'));
  }

  destroy() {
    this.exchange = undefined;
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    this.pool.forget(this);
    this.socket.destroy();
  }
}

/** Keep-alive connections to one backend; requests wait in a queue when all `connections` are busy. */
export class RawPool {
  constructor(origin, { connections = 128 } = {}) {
    const url = new URL(origin);
    this.host = url.hostname;
    this.port = Number(url.port || 80);
    this.hostHeader = url.host;
    this.max = connections;
    this.count = 0;
    this.idle = [];
    this.queue = [];
  }

  dispatch(exchange) {
    const conn = this.idle.pop();
    if (conn !== undefined) conn.assign(exchange);
    else if (this.count < this.max) {
      this.count++;
      new Conn(this).assign(exchange);
    } else this.queue.push(exchange);
  }

  #nextQueued() {
    let next = this.queue.shift();
    while (next !== undefined && next.cancelled) next = this.queue.shift();
    return next;
  }

  release(conn) {
    const next = this.queue.length === 0 ? undefined : this.#nextQueued();
    if (next !== undefined) conn.assign(next);
    else this.idle.push(conn);
  }

  forget(conn) {
    this.count--;
    const k = this.idle.indexOf(conn);
    if (k !== -1) this.idle.splice(k, 1);
    const next = this.queue.length === 0 ? undefined : this.#nextQueued();
    if (next !== undefined) this.dispatch(next);
  }
}

/** Cancels an exchange: its connection (if any) is destroyed, its callbacks never run. */
export function abortExchange(ex) {
  ex.cancelled = true;
  const conn = ex.conn;
  if (conn !== undefined) {
    ex.conn = undefined;
    conn.destroy();
  }
}

// ---------------------------------------------------------------- server side

/** How a response body goes to the client. */
export const AS_IS = 0; // framed by the head (Content-Length, or no body): bytes written as they come
export const PASS_CHUNKED = 1; // already chunk-encoded bytes (passed through): Transfer-Encoding: chunked added
export const ENCODE = 2; // unframed bytes: chunk-encoded here (HTTP/1.1 client) or close-delimited (HTTP/1.0)

const MAX_BODY = 64 * 1024 * 1024;
const SMALL_TEXT = 4096;

/**
 * One client connection of the raw server. Requests are handled one at a
 * time (pipelined ones wait in `buf`); the request in flight is described by
 * the fields below, and answered with complete()/head()+write()+end()/fail().
 */
export class ServerConn {
  constructor(socket, onRequest) {
    this.socket = socket;
    this.onRequest = onRequest;
    this.buf = EMPTY;
    this.busy = false;
    this.closed = false;
    this.exchange = undefined; // set by the peer, aborted when the client goes away
    // the request in flight
    this.method = '';
    this.target = '';
    this.minor = 1;
    this.headers = undefined; // flat [name, value, …]; hop-by-hop, Host, Content-Length and X-Forwarded-For left out
    this.host = undefined;
    this.xff = undefined;
    this.keepAlive = true;
    this.bodyLength = 0;
    this.body = undefined;
    this.bodyChunks = undefined;
    this.bodyGot = 0;
    this.encode = false;
    this.headOnly = false;
    this.remoteAddress = socket.remoteAddress;
    socket.setNoDelay(true);
    socket.on('data', (b) => this.onBytes(b));
    socket.on('error', () => {});
    socket.on('close', () => this.onClose());
  }

  onBytes(b) {
    if (this.bodyChunks !== undefined) {
      this.takeBody(b, 0);
      return;
    }
    this.buf = this.buf.length === 0 ? b : Buffer.concat([this.buf, b]);
    if (this.busy) {
      if (this.buf.length > 1024 * 1024) this.socket.pause();
      return;
    }
    this.parse();
  }

  parse() {
    const b = this.buf;
    const end = b.indexOf('\r\n\r\n', 0, 'latin1');
    if (end === -1) {
      if (b.length > MAX_HEAD) this.reject(431, 'Request Header Fields Too Large');
      return;
    }
    if (!this.parseHead(b.latin1Slice(0, end))) return;
    let i = end + 4;
    this.busy = true;
    if (this.bodyLength > 0) {
      this.buf = EMPTY;
      this.bodyChunks = [];
      this.bodyGot = 0;
      this.takeBody(b, i);
      return;
    }
    this.buf = i === b.length ? EMPTY : b.subarray(i);
    this.body = undefined;
    this.onRequest(this);
  }

  takeBody(b, i) {
    const n = Math.min(this.bodyLength - this.bodyGot, b.length - i);
    if (n > 0) this.bodyChunks.push(i === 0 && n === b.length ? b : b.subarray(i, i + n));
    this.bodyGot += n;
    if (i + n < b.length) this.buf = b.subarray(i + n);
    if (this.bodyGot < this.bodyLength) return;
    const chunks = this.bodyChunks;
    this.bodyChunks = undefined;
    this.body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    this.onRequest(this);
  }

  /** Parses a request head (without its CRLFCRLF); false when the request was refused. */
  parseHead(text) {
    const sp1 = text.indexOf(' ');
    const sp2 = sp1 === -1 ? -1 : text.indexOf(' ', sp1 + 1);
    let eol = text.indexOf('\r\n');
    if (eol === -1) eol = text.length;
    if (sp1 <= 0 || sp2 === -1 || sp2 > eol || eol - sp2 !== 9 || !text.startsWith('HTTP/1.', sp2 + 1)) return this.reject(400, 'Bad Request');
    this.method = text.slice(0, sp1);
    this.target = text.slice(sp1 + 1, sp2);
    const minor = text.charCodeAt(sp2 + 8) - 48;
    if (minor !== 0 && minor !== 1) return this.reject(505, 'HTTP Version Not Supported');
    this.minor = minor;
    this.headOnly = this.method === 'HEAD';
    const headers = [];
    let length = -1;
    let keepAlive = minor === 1;
    let host;
    let xff;
    let pos = eol + 2;
    while (pos < text.length) {
      let next = text.indexOf('\r\n', pos);
      if (next === -1) next = text.length;
      const colon = text.indexOf(':', pos);
      const c0 = text.charCodeAt(pos);
      if (colon === -1 || colon > next || colon === pos || c0 === 32 || c0 === 9) return this.reject(400, 'Bad Request');
      const name = text.slice(pos, colon);
      const value = text.slice(colon + 1, next).trim();
      pos = next + 2;
      const lower = name.length > 17 ? name : name.toLowerCase();
      if (lower === 'content-length') {
        if (!/^\d{1,15}$/.test(value) || (length !== -1 && Number(value) !== length)) return this.reject(400, 'Bad Request');
        length = Number(value);
        continue;
      } else if (lower === 'host') {
        if (host !== undefined) return this.reject(400, 'Bad Request');
        host = value;
        continue;
      } else if (lower === 'x-forwarded-for') {
        xff = xff === undefined ? value : `${xff}, ${value}`;
        continue;
      } else if (HOP.has(lower)) {
        // Chunked request bodies are not implemented in this experiment (refusing them also refuses TE+CL smuggling).
        if (lower === 'transfer-encoding') return this.reject(501, 'Not Implemented');
        if (lower === 'connection') {
          const v = value.toLowerCase();
          if (v.includes('close')) keepAlive = false;
          else if (v.includes('keep-alive')) keepAlive = true;
        }
        continue;
      }
      headers.push(name, value);
    }
    if (minor === 1 && host === undefined) return this.reject(400, 'Bad Request');
    this.headers = headers;
    this.host = host;
    this.xff = xff;
    this.keepAlive = keepAlive;
    this.bodyLength = length === -1 ? 0 : length;
    if (this.bodyLength > MAX_BODY) return this.reject(413, 'Content Too Large');
    return true;
  }

  reject(status, reason) {
    this.socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
    this.closed = true;
    return false;
  }

  /** The response head as text; `mode` says how its body is framed. */
  headText(status, reason, headers, mode) {
    let head = `HTTP/1.1 ${status} ${reason}\r\n`;
    for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    this.encode = false;
    if (mode === PASS_CHUNKED) head += 'transfer-encoding: chunked\r\n';
    else if (mode === ENCODE && !this.headOnly) {
      if (this.minor === 1) {
        head += 'transfer-encoding: chunked\r\n';
        this.encode = true;
      } else this.keepAlive = false;
    }
    if (!this.keepAlive) head += 'connection: close\r\n';
    else if (this.minor === 0) head += 'connection: keep-alive\r\n';
    return `${head}\r\n`;
  }

  /** A whole response at once (body framed by the head, or none). */
  complete(status, reason, headers, body) {
    if (this.closed) return;
    const head = this.headText(status, reason, headers, AS_IS);
    const socket = this.socket;
    if (body === undefined || body.length === 0 || this.headOnly) socket.write(head, 'latin1');
    else if (body.length <= SMALL_TEXT) socket.write(head + body.latin1Slice(0, body.length), 'latin1');
    else {
      socket.cork();
      socket.write(head, 'latin1');
      socket.write(body);
      socket.uncork();
    }
    this.done();
  }

  head(status, reason, headers, mode) {
    if (this.closed) return;
    this.socket.write(this.headText(status, reason, headers, mode), 'latin1');
  }

  /** A body chunk; false: the client fell behind, wait for whenDrained(). */
  write(chunk) {
    if (this.closed || this.headOnly) return true;
    if (!this.encode) return this.socket.write(chunk);
    if (chunk.length === 0) return true;
    const socket = this.socket;
    socket.cork();
    socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
    socket.write(chunk);
    const ok = socket.write('\r\n', 'latin1');
    socket.uncork();
    return ok;
  }

  whenDrained(fn) {
    this.socket.once('drain', fn);
  }

  end() {
    if (this.closed) return;
    if (this.encode) this.socket.write('0\r\n\r\n', 'latin1');
    this.done();
  }

  /** The upstream failed: a 502 before the head, a cut connection after it. */
  fail(headSent) {
    if (this.closed) return;
    if (!headSent) {
      this.keepAlive = false;
      this.complete(502, 'Bad Gateway', ['content-type', 'text/plain', 'content-length', '12'], Buffer.from('bad gateway\n'));
      return;
    }
    this.closed = true;
    this.socket.resetAndDestroy();
  }

  done() {
    this.exchange = undefined;
    this.busy = false;
    if (!this.keepAlive) {
      this.closed = true;
      this.socket.end();
      return;
    }
    if (this.buf.length > 0) {
      this.socket.resume();
      this.parse();
    }
  }

  onClose() {
    this.closed = true;
    const ex = this.exchange;
    this.exchange = undefined;
    if (ex !== undefined) ex.abort();
  }
}

/** A net.Server whose connections are ServerConns. */
export function createRawServer(onRequest) {
  return net.createServer({ noDelay: true }, (socket) => new ServerConn(socket, onRequest));
}
