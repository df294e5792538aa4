/**
 * request-id: gives every request an id the backend and the client both see.
 * A third-party plugin, written exactly as one outside this repository would
 * be: it imports only the published package (`switchyard`).
 *
 * An id the client sent is kept when it looks like an id (so a request can
 * be followed through several proxies), unless `trust_incoming = false`;
 * otherwise a random UUID is set. The same id goes back on the response.
 */
import { randomUUID } from 'node:crypto';
import { definePlugin, type MiddlewareDefinition, type Next, type RequestContext } from 'switchyard';

export interface RequestIdConfig {
  /** Header name, as configured (any case). */
  readonly header: string;
  readonly trust_incoming: boolean;
  readonly response: boolean;
}

/** Ids a client may choose: short, and nothing that could smuggle a header or a log line. */
const ACCEPTABLE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The id to use: the incoming one if it is acceptable (and trusted), else a new one. */
export function chooseRequestId(incoming: string | string[] | undefined, trustIncoming: boolean): string {
  if (trustIncoming && typeof incoming === 'string' && ACCEPTABLE_ID.test(incoming)) return incoming;
  return randomUUID();
}

export default definePlugin({
  name: 'request-id',
  kind: 'middleware',
  description: 'Sets a request id header (kept from the client when it sent a sane one) and returns it on the response.',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      header: { type: 'string', default: 'X-Request-Id', pattern: '^[A-Za-z0-9-]+$', description: 'Header that carries the id.' },
      trust_incoming: { type: 'boolean', default: true, description: "Keep an id the client sent (if it is 1-128 of A-Z a-z 0-9 . _ : -)." },
      response: { type: 'boolean', default: true, description: 'Also set the header on the response.' },
    },
  },
  create(config: RequestIdConfig) {
    // Request headers reach plugins with lower-case names.
    const header = config.header.toLowerCase();
    const { trust_incoming: trustIncoming, response } = config;
    return {
      async handle(ctx: RequestContext, next: Next): Promise<void> {
        const id = chooseRequestId(ctx.headers[header], trustIncoming);
        ctx.headers[header] = id;
        await next();
        if (response && ctx.response !== undefined) ctx.response.headers[header] = id;
      },
    };
  },
}) satisfies MiddlewareDefinition<RequestIdConfig>;
