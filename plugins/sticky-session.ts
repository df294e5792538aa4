/**
 * sticky-session: cookie-based backend affinity. The first response a
 * client gets carries a cookie naming the backend that served it; later
 * requests with that cookie are pinned to that backend. When the backend is
 * down or no longer in the pool, the strategy picks another one and the
 * client is re-pinned with a new cookie. Works with every strategy.
 *
 * ```toml
 * [[pipeline]]
 * plugin = "sticky-session"
 * cookie = "lb_sticky"
 * max_age = "1h"
 * secure = true
 * same_site = "Lax"
 * ```
 *
 * The cookie value is an HMAC-SHA256 of the backend URL (truncated to 96
 * bits, base64url), so it does not show the backend's address. It needs no
 * shared state: every instance and worker with the same `secret` maps a value
 * to the same backend. Without `secret` a built-in key is used, which still
 * hides the address from a casual look but lets someone who can guess the
 * backend URLs confirm a guess; set `secret` to prevent that.
 *
 * The cookie is sent when a client is (re)pinned — its first response, or a
 * response from a backend other than the one its cookie names — not on every
 * response, so Max-Age counts from the moment of pinning.
 */
import { createHmac } from 'node:crypto';
import {
  definePlugin,
  parseDuration,
  durationSchema,
  readCookie,
  type Candidate,
  type MiddlewareInstance,
  type Next,
  type PluginApi,
  type RequestContext,
} from '../src/index.js';

export interface StickySessionConfig {
  readonly cookie: string;
  readonly max_age?: string;
  readonly secure: boolean;
  readonly same_site: 'Strict' | 'Lax' | 'None';
  readonly path: string;
  readonly domain?: string;
  readonly secret?: string;
}

/** Key used when `secret` is not configured: values are stable across instances and restarts. */
const DEFAULT_SECRET = 'switchyard sticky-session v1';

/** The cookie value naming `url`: HMAC-SHA256(secret, url), first 12 bytes, base64url (16 characters). */
export function cookieValueFor(url: string, secret: string = DEFAULT_SECRET): string {
  return createHmac('sha256', secret).update(url).digest().subarray(0, 12).toString('base64url');
}

/**
 * Maps backend URLs to cookie values and back. Values are computed once per
 * URL; a value is looked up only among the backends of the request's pool,
 * so a cookie from another pool, or for a backend removed from this one,
 * finds nothing.
 */
export class StickyCookieCodec {
  private readonly valueByUrl = new Map<string, string>();
  private readonly urlByValue = new Map<string, string>();

  constructor(private readonly secret: string = DEFAULT_SECRET) {}

  valueFor(url: string): string {
    let value = this.valueByUrl.get(url);
    if (value === undefined) {
      value = cookieValueFor(url, this.secret);
      this.valueByUrl.set(url, value);
      this.urlByValue.set(value, url);
    }
    return value;
  }

  /** The backend of `backends` that `value` names, or undefined. */
  lookup(value: string, backends: readonly Candidate[]): Candidate | undefined {
    const url = this.urlByValue.get(value);
    if (url !== undefined) {
      for (let i = 0; i < backends.length; i++) if (backends[i]!.url === url) return backends[i];
      return undefined;
    }
    // A URL this codec has not seen yet (first requests of a generation).
    for (let i = 0; i < backends.length; i++) {
      if (this.valueFor(backends[i]!.url) === value) return backends[i];
    }
    return undefined;
  }
}

/** `; Path=/; Max-Age=3600; Domain=…; HttpOnly; Secure; SameSite=Lax`, built once. */
export function cookieAttributes(options: {
  path: string;
  maxAgeSeconds?: number | undefined;
  domain?: string | undefined;
  secure: boolean;
  sameSite: 'Strict' | 'Lax' | 'None';
}): string {
  let out = `; Path=${options.path}`;
  if (options.maxAgeSeconds !== undefined) out += `; Max-Age=${options.maxAgeSeconds}`;
  if (options.domain !== undefined) out += `; Domain=${options.domain}`;
  out += '; HttpOnly';
  if (options.secure) out += '; Secure';
  out += `; SameSite=${options.sameSite}`;
  return out;
}

/** Adds one Set-Cookie line, keeping any the backend sent (a string or a list). */
export function appendSetCookie(headers: Record<string, string | string[]>, line: string): void {
  const existing = headers['set-cookie'];
  if (existing === undefined) headers['set-cookie'] = line;
  else if (typeof existing === 'string') headers['set-cookie'] = [existing, line];
  else existing.push(line);
}

const TOKEN = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";

export const schema = {
  type: 'object',
  additionalProperties: false,
  description: 'Cookie-based sticky sessions: a client keeps reaching the backend that served it first.',
  properties: {
    cookie: {
      type: 'string',
      pattern: TOKEN,
      default: 'lb_sticky',
      description: 'Name of the affinity cookie (letters, digits and !#$%&\'*+.^_`|~-).',
    },
    max_age: durationSchema('Cookie lifetime, sent as Max-Age (whole seconds, at least 1s). Leave it out for a session cookie that lasts until the browser closes.'),
    secure: {
      type: 'boolean',
      default: false,
      description: 'Add the Secure attribute (browsers send the cookie over HTTPS only). Required when same_site = "None".',
    },
    same_site: {
      enum: ['Strict', 'Lax', 'None'],
      default: 'Lax',
      description: 'SameSite attribute: "Strict", "Lax" or "None" (None needs secure = true).',
    },
    path: {
      type: 'string',
      pattern: '^/[^;\\s\\u0000-\\u001f\\u007f]*$',
      default: '/',
      description: 'Path attribute: the cookie is sent for this path and below. Starts with "/", no ";" or spaces.',
    },
    domain: {
      type: 'string',
      pattern: '^\\.?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$',
      description: 'Domain attribute, e.g. "example.com" to share the cookie with subdomains. Leave it out to send the cookie to the exact host only.',
    },
    secret: {
      type: 'string',
      minLength: 16,
      description: 'Key for the HMAC that turns a backend URL into the cookie value (at least 16 characters). Give every instance the same secret. Without it a built-in key is used and a backend address can be confirmed by guessing it.',
    },
  },
};

export default definePlugin({
  name: 'sticky-session',
  kind: 'middleware',
  description: 'Cookie-based session affinity that works with every strategy.',
  schema,
  create(config: StickySessionConfig, _api: PluginApi): MiddlewareInstance {
    let maxAgeSeconds: number | undefined;
    if (config.max_age !== undefined) {
      maxAgeSeconds = Math.floor(parseDuration(config.max_age) / 1000);
      if (maxAgeSeconds < 1) {
        throw new Error(`sticky-session: max_age = "${config.max_age}" is under one second; write at least "1s", or leave max_age out for a session cookie`);
      }
    }
    if (config.same_site === 'None' && !config.secure) {
      throw new Error('sticky-session: same_site = "None" needs secure = true (browsers drop SameSite=None cookies without Secure)');
    }
    const name = config.cookie;
    const prefix = `${name}=`;
    const attributes = cookieAttributes({ path: config.path, maxAgeSeconds, domain: config.domain, secure: config.secure, sameSite: config.same_site });
    const codec = new StickyCookieCodec(config.secret);
    /** Whole Set-Cookie line per backend URL, built on first use. */
    const lines = new Map<string, string>();

    return {
      async handle(ctx: RequestContext, next: Next): Promise<void> {
        const value = readCookie(ctx.headers.cookie, name);
        let pinned: string | undefined;
        if (value !== undefined) {
          const backend = codec.lookup(value, ctx.pool.backends);
          // A backend that is down is not pinned: the strategy picks another
          // and the client is re-pinned below.
          if (backend !== undefined && backend.healthy) {
            pinned = backend.url;
            ctx.pin(pinned);
          }
        }
        await next();
        const served = ctx.backend;
        const response = ctx.response;
        // Only a backend's answer pins; a local one (an error, a 429) names no backend.
        if (served === undefined || response === undefined || response.source !== 'backend' || served.url === pinned) return;
        let line = lines.get(served.url);
        if (line === undefined) {
          line = prefix + codec.valueFor(served.url) + attributes;
          lines.set(served.url, line);
        }
        appendSetCookie(response.headers, line);
      },
    };
  },
});
