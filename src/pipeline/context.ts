/**
 * The per-request object every middleware sees. One is allocated per request;
 * everything else it needs (route, pool, pipeline) was built with the
 * configuration generation.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { RequestContext, ResponseHead } from '../plugin/types.js';
import type { PoolMember, PoolRuntime, SelectionRequest } from '../pool/pool.js';
import type { UpstreamExchange } from '../proxy/upstream-exchange.js';

type HeaderMap = Record<string, string | string[]>;

/** A response that came from a backend; its headers are what will be written (hop-by-hop ones already removed). */
export class BackendResponse implements ResponseHead {
  readonly source = 'backend' as const;
  constructor(
    public status: number,
    readonly headers: HeaderMap,
    readonly exchange: UpstreamExchange,
  ) {}
}

/** A response a plugin (ctx.respond) or the core produced. */
export class LocalResponse implements ResponseHead {
  readonly source = 'local' as const;
  constructor(
    public status: number,
    readonly headers: HeaderMap,
    readonly body: string | Buffer | undefined,
  ) {}
}

export class ProxyContext implements RequestContext, SelectionRequest {
  readonly method: string;
  path: string;
  readonly host: string;
  clientIp: string;
  readonly protocol: 'http' | 'https';
  readonly headers: Record<string, string | string[] | undefined>;
  body: Readable | Buffer | null;
  response: BackendResponse | LocalResponse | undefined = undefined;
  backend: PoolMember | undefined = undefined;
  attempt = 0;
  pinned: string | undefined = undefined;
  excluded: Set<string> | undefined = undefined;
  tried: string[] | undefined = undefined;
  /** The upstream exchange of the latest attempt, until its response is written or discarded. */
  exchange: UpstreamExchange | undefined = undefined;
  /** For an Upgrade request: the protocol asked for (`websocket`); the terminal step then dispatches an upgrade. */
  upgrade: string | undefined = undefined;
  #state: Record<string, unknown> | undefined;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly pool: PoolRuntime,
    host: string,
    path: string,
    protocol: 'http' | 'https',
  ) {
    this.method = req.method!;
    this.path = path;
    this.host = host;
    this.protocol = protocol;
    this.clientIp = '';
    this.headers = req.headers;
    this.body = hasBody(req) ? req : null;
  }

  get state(): Record<string, unknown> {
    return (this.#state ??= {});
  }

  respond(status: number, body?: string | Buffer, headers?: Record<string, string | string[]>): void {
    this.discardUpstream();
    const normalized: HeaderMap = {};
    if (headers) for (const name of Object.keys(headers)) normalized[name.toLowerCase()] = headers[name]!;
    this.response = new LocalResponse(status, normalized, body);
  }

  pin(url: string): void {
    this.pinned = url;
  }

  exclude(url: string): void {
    (this.excluded ??= new Set()).add(url);
  }

  /** Records that an attempt went to `url`, so a retry prefers another backend. */
  markTried(url: string): void {
    (this.tried ??= []).push(url);
  }

  /** Drops the previous attempt's response (a retry, or a plugin answering after all). */
  discardUpstream(): void {
    if (this.exchange !== undefined) {
      this.exchange.cancel();
      this.exchange = undefined;
    }
  }

  async bufferBody(maxBytes: number): Promise<Buffer | undefined> {
    const body = this.body;
    if (body === null || Buffer.isBuffer(body)) return body ?? undefined;
    const declared = Number(this.req.headers['content-length']);
    if (declared > maxBytes) return undefined;
    const chunks: Buffer[] = [];
    let size = 0;
    const iterator = body[Symbol.asyncIterator]();
    while (true) {
      const { value, done } = await iterator.next();
      if (done) break;
      const chunk = value as Buffer;
      chunks.push(chunk);
      size += chunk.length;
      if (size > maxBytes) {
        // Too large to replay: send what was read, then the rest, as one stream.
        this.body = Readable.from(concatStreams(chunks, iterator));
        return undefined;
      }
    }
    const buffered = Buffer.concat(chunks, size);
    this.body = buffered;
    return buffered;
  }
}

async function* concatStreams(head: Buffer[], rest: AsyncIterator<unknown>): AsyncGenerator<Buffer> {
  yield* head;
  while (true) {
    const { value, done } = await rest.next();
    if (done) return;
    yield value as Buffer;
  }
}

/** A request has a body when it says so: Content-Length above 0, or any Transfer-Encoding. */
function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  if (length !== undefined) return length !== '0';
  return req.headers['transfer-encoding'] !== undefined;
}
