/**
 * Upgrade (WebSocket and any other protocol) passthrough. The request runs
 * the pipeline like any other — so a sticky plugin pins, a rate limiter
 * counts — and the terminal step dispatches it with undici's `upgrade`
 * option and this handler:
 *
 * - the backend answers 101: undici hands its socket over (`onUpgrade`),
 *   the 101 head goes to the client, and a Tunnel pipes bytes both ways;
 * - the backend answers anything else (403, 401, 426 …): it arrives as a
 *   normal response (`onHeaders`) and is passed to the client as it is —
 *   undici's `dispatcher.upgrade()` would hide it behind an error.
 *
 * An open tunnel counts as an active connection of its backend until
 * either side closes it, which closes the other.
 */
import { STATUS_CODES, validateHeaderName, validateHeaderValue } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { BackendResponse } from '../pipeline/context.js';
import type { Backend } from '../pool/backend.js';
import { tunnelClosed, tunnelOpened, type OpenTunnel } from '../pool/open-tunnels.js';
import { responseHeaders } from './hop-by-hop.js';
import { latin1Pairs, UpstreamExchange } from './upstream-exchange.js';

function ignoreError(): void {}

const H2C = /^h2c$/i;
const MENTIONS_H2C = /h2c/i;

/**
 * The protocols of an Upgrade header that may be tunnelled, or undefined
 * when none is left. h2c is never offered to a backend: once switched, the
 * connection carries HTTP/2 requests that no route or plugin sees (h2c
 * smuggling), and RFC 9113 §3.1 deprecated the upgrade. Such a request is
 * served as plain HTTP/1.1, as Envoy does.
 */
export function tunnelledProtocols(upgrade: string): string | undefined {
  if (!MENTIONS_H2C.test(upgrade)) return upgrade;
  const kept = upgrade
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '' && !H2C.test(p));
  return kept.length === 0 ? undefined : kept.join(', ');
}

/** The first value of `name` (lower-case) in raw header pairs. */
function rawHeaderValue(raw: readonly string[], name: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    const key = raw[i]!;
    if (key.length === name.length && key.toLowerCase() === name) return raw[i + 1]!;
  }
  return undefined;
}

export class UpgradeExchange extends UpstreamExchange {
  #socket: Duplex | undefined;
  #handedOver = false;

  onUpgrade(statusCode: number, rawHeaders: Buffer[], socket: Duplex): void {
    // undici removed its own listeners: until a Tunnel owns it, an error must not go unhandled.
    socket.on('error', ignoreError);
    this.#socket = socket;
    const raw = latin1Pairs(rawHeaders);
    const headers = responseHeaders(raw);
    const protocol = rawHeaderValue(raw, 'upgrade');
    headers.connection = 'Upgrade';
    if (protocol !== undefined) headers.upgrade = protocol;
    this.settleWith(new BackendResponse(statusCode, headers, this));
  }

  /** True when the backend switched protocols and its socket is waiting for takeSocket(). */
  get upgraded(): boolean {
    return this.#socket !== undefined && !this.#handedOver;
  }

  /** The backend's socket after a 101, handed to the caller once. */
  takeSocket(): Duplex {
    this.#handedOver = true;
    return this.#socket!;
  }

  override cancel(): void {
    super.cancel();
    if (this.#socket !== undefined && !this.#handedOver) {
      this.#handedOver = true;
      this.#socket.destroy();
    }
  }
}

/**
 * While an Upgrade request waits for its answer nothing reads the client's
 * socket (Node hands it over paused, and bytes the client sends early belong
 * to the tunnel), so a client that goes away would not be noticed: the
 * backend request would run on until `response_timeout`, holding a backend
 * connection. Here the socket is watched without consuming a byte: read(0)
 * lets a FIN that follows everything already read end the stream, and
 * 'end' destroys the socket — whose 'close' cancels the upstream request.
 * (A FIN behind unread early bytes is seen once the tunnel reads them.)
 */
export function watchHandshakeClient(socket: Socket): void {
  socket.on('readable', readNothing);
  socket.on('end', destroyClient);
}

/** The answer is in: the tunnel (or the answer's end) takes the socket over. */
export function stopWatchingHandshakeClient(socket: Socket): void {
  socket.off('readable', readNothing);
  socket.off('end', destroyClient);
}

function readNothing(this: Socket): void {
  this.read(0);
}

function destroyClient(this: Socket): void {
  this.destroy();
}

/**
 * The response head for a 101 (written to the client socket by hand: no
 * ServerResponse exists for an Upgrade). Throws when a plugin left a header
 * that cannot be written (invalid name or value), as `res.writeHead` would.
 */
export function switchingProtocolsHead(status: number, headers: Readonly<Record<string, string | string[]>>): string {
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
  const line = (name: string, value: string): void => {
    validateHeaderName(name);
    validateHeaderValue(name, value);
    head += `${name}: ${value}\r\n`;
  };
  for (const name of Object.keys(headers)) {
    const value = headers[name]!;
    if (Array.isArray(value)) for (const v of value) line(name, v);
    else line(name, value);
  }
  return `${head}\r\n`;
}

/**
 * After one side ends its half (FIN, passed on to the other), how long the
 * other may still send before the tunnel is closed: WebSocket peers close
 * both halves within a round trip, a peer that never does must not hold it.
 */
const HALF_CLOSE_MS = 1000;

/** Client ⇄ backend byte pipe after a 101. */
class Tunnel implements OpenTunnel {
  #open = true;
  #halfClosed: NodeJS.Timeout | undefined;

  constructor(
    readonly client: Socket,
    readonly upstream: Duplex,
    readonly backend: Backend,
  ) {}

  readonly halfClose = (): void => {
    if (!this.#open || this.#halfClosed !== undefined) return;
    this.#halfClosed = setTimeout(this.close, HALF_CLOSE_MS);
    this.#halfClosed.unref();
  };

  readonly close = (): void => {
    if (!this.#open) return;
    this.#open = false;
    clearTimeout(this.#halfClosed);
    this.client.destroy();
    this.upstream.destroy();
    tunnelClosed(this.backend, this);
  };
}

/**
 * Starts piping between `client` (the head of the 101 already written to it)
 * and `upstream`. `clientHead` holds bytes the client sent after its request
 * head. Either side closing, an error on either, or `idleMs` without traffic
 * closes both; one side ending its half is passed on, and the tunnel closes
 * HALF_CLOSE_MS later unless the other side closed first.
 */
export function openTunnel(client: Socket, upstream: Duplex, clientHead: Buffer, backend: Backend, idleMs: number): void {
  const tunnel = new Tunnel(client, upstream, backend);
  tunnelOpened(backend, tunnel);
  client.on('error', tunnel.close);
  upstream.on('error', tunnel.close);
  client.on('close', tunnel.close);
  upstream.on('close', tunnel.close);
  client.on('end', tunnel.halfClose);
  upstream.on('end', tunnel.halfClose);
  if (idleMs > 0) {
    client.setTimeout(idleMs);
    client.on('timeout', tunnel.close);
  }
  client.setNoDelay(true);
  if (clientHead.length > 0) upstream.write(clientHead);
  upstream.pipe(client);
  client.pipe(upstream);
}
