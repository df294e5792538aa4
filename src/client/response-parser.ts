/**
 * Node's own HTTP parser (llhttp, the one node:http reads responses with),
 * strict, for backend responses. Reusing it keeps the parts of HTTP/1.1
 * that decide where one response ends and the next begins — chunked
 * framing, Content-Length, what a HEAD, 1xx, 204 or 304 carries — in the
 * code Node ships and keeps secure, not in ours.
 *
 * It is reached through `_http_common`, which Node 20 exports without a
 * warning but does not document; newer Node versions deprecate it
 * (DEP0199). When it cannot be loaded — or SWITCHYARD_BACKEND_CLIENT=undici
 * asks for undici, a way out should this client ever misbehave —
 * `ResponseParser` is undefined and every backend is reached through
 * undici instead (backend-client.ts); `UNDICI_REASON` says why.
 */
import { createRequire } from 'node:module';

export interface NativeParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  /** Bytes parsed, or the parse error (code HPE_…). */
  execute(chunk: Buffer): number | Error;
  /** At the end of the stream: completes a close-delimited body, or says what was cut short. */
  finish(): Error | undefined;
  close(): void;
  [slot: number]: unknown;
}

export interface ParserClass {
  new (): NativeParser;
  readonly RESPONSE: number;
  readonly kOnHeaders: number;
  readonly kOnHeadersComplete: number;
  readonly kOnBody: number;
  readonly kOnMessageComplete: number;
  readonly kLenientNone: number;
}

/** Set when every request goes through undici: why, for the start-up log. */
export let UNDICI_REASON: string | undefined;

function load(): ParserClass | undefined {
  if (process.env.SWITCHYARD_BACKEND_CLIENT === 'undici') {
    UNDICI_REASON = 'SWITCHYARD_BACKEND_CLIENT=undici';
    return undefined;
  }
  try {
    const parser = (createRequire(import.meta.url)('_http_common') as { HTTPParser?: ParserClass }).HTTPParser;
    if (typeof parser === 'function' && typeof parser.prototype.execute === 'function') return parser;
  } catch {
    // Reported below.
  }
  UNDICI_REASON = `this Node (${process.version}) has no usable HTTP parser in _http_common`;
  return undefined;
}

export const ResponseParser: ParserClass | undefined = load();
