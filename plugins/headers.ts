/**
 * headers: set, append and remove request headers (on the way to the
 * backend) and response headers (on the way back to the client).
 *
 * ```toml
 * [[pipeline]]
 * plugin = "headers"
 * request.set = { "X-Served-By" = "lb" }
 * request.add = { "Via" = "1.1 switchyard" }
 * request.remove = ["X-Debug"]
 * response.set = { "X-Frame-Options" = "DENY" }
 * response.remove = ["Server"]
 * ```
 *
 * For each direction the operations run in the order remove → set → add, so
 * `remove = ["Server"]` with `set = { Server = "lb" }` leaves `Server: lb`,
 * and `add` appends to a value `set` just wrote. Names are case-insensitive.
 * X-Forwarded-* request headers belong to the core (it writes them from the
 * connection and `trusted_proxies`); configuring them here is an error, as is
 * touching the headers that frame the message (Content-Length,
 * Transfer-Encoding and the hop-by-hop ones) and setting or adding a
 * request's Expect — in any spelling with `_` for `-`. A request's Host may be set, not added (a
 * second Host makes the request unsendable). A value must be one line that Node can write:
 * tab, printable ASCII or Latin-1 (up to U+00FF).
 *
 * CGI, WSGI, PHP and Rack backends read `_` in a header name as `-` (both
 * `X-User` and `X_User` become `HTTP_X_USER`), so a request header this
 * plugin removes or sets is also removed in every spelling with `_` for `-`:
 * otherwise a client's `X_User` would reach such a backend as the `X-User`
 * that was removed, or beside the one that was set.
 */
import { definePlugin, type MiddlewareInstance, type Next, type RequestContext } from '../src/index.js';

/** A header map as the core hands it out: request (may hold undefined) or response. */
export type HeaderMap = Record<string, string | string[] | undefined>;

export interface HeaderOpsConfig {
  readonly set: Readonly<Record<string, string>>;
  readonly add: Readonly<Record<string, string | readonly string[]>>;
  readonly remove: readonly string[];
}

export interface HeadersConfig {
  readonly request: HeaderOpsConfig;
  readonly response: HeaderOpsConfig;
}

/**
 * One direction's operations, precomputed: lower-case names and values in
 * parallel arrays so that applying them is index loops and header writes only.
 */
export interface HeaderOps {
  readonly removeNames: readonly string[];
  readonly setNames: readonly string[];
  readonly setValues: readonly string[];
  readonly addNames: readonly string[];
  /** A string appends one line, an array appends each of its values. */
  readonly addValues: readonly (string | readonly string[])[];
  /**
   * Spellings with `_` for `-` of the request names removed or set, removed
   * before anything else. Empty for responses.
   */
  readonly aliasNames: readonly string[];
  /**
   * Names (lower case, `-` only) with too many hyphens to list every spelling
   * with `_`: the request's header names are scanned for those instead.
   * Undefined when none.
   */
  readonly scannedAliases: ReadonlySet<string> | undefined;
  /** True when there is nothing to do. */
  readonly empty: boolean;
}

/**
 * A name with n hyphens has 2^n − 1 spellings with `_`; past this many
 * hyphens, looking each one up would cost more than scanning the request's
 * header names once.
 */
export const MAX_LISTED_ALIAS_HYPHENS = 4;

/** Every spelling of lower-case `name` with one or more of its `-` written `_` (none if it has no `-`). */
export function underscoreSpellings(name: string): string[] {
  const hyphens: number[] = [];
  for (let i = 0; i < name.length; i++) if (name.charCodeAt(i) === 45) hyphens.push(i);
  const out: string[] = [];
  for (let mask = 1; mask < 2 ** hyphens.length; mask++) {
    const chars = name.split('');
    for (let bit = 0; bit < hyphens.length; bit++) if ((mask & (1 << bit)) !== 0) chars[hyphens[bit]!] = '_';
    out.push(chars.join(''));
  }
  return out;
}

/** RFC 9110 token: what a header name may be made of. */
const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
/**
 * What Node and undici will write as a header value: tab, printable ASCII and
 * obs-text (U+0080-U+00FF, sent as one byte each). CR and LF would start a
 * new header line; any other control character, or a character beyond
 * U+00FF, makes Node or undici throw when the header is written — on every
 * request, so it is refused when the configuration is loaded instead.
 */
const VALUE_PATTERN = '^[\\t\\u0020-\\u007e\\u0080-\\u00ff]*$';
const WRITABLE_VALUE = new RegExp(VALUE_PATTERN);

/** Headers that frame the message or belong to one connection: the core manages them. */
const FRAMING = ['connection', 'content-length', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'];
const FRAMING_SET = new Set(FRAMING);
/**
 * Expect belongs to the client's connection: the core answers 100-continue
 * itself and never forwards Expect (undici refuses to send it, so a set one
 * would fail every request as a backend error).
 */
const REQUEST_ONLY_MANAGED = ['expect'];

/** A regex source for a literal made of letters and '-', in any case and with '_' for any '-' (JSON Schema patterns take no flags). */
function anyCase(literal: string): string {
  let out = '';
  for (const c of literal) out += /[a-z]/.test(c) ? `[${c}${c.toUpperCase()}]` : c === '-' ? '[-_]' : c;
  return out;
}

/**
 * Header names this plugin may touch, as a schema pattern, so that `lb validate`
 * already refuses the ones the core manages (create() checks again, with a
 * longer message).
 */
function namePattern(direction: 'request' | 'response', op: 'set' | 'add' | 'remove'): string {
  const managed = FRAMING.map((n) => `${anyCase(n)}$`);
  if (direction === 'request') {
    // Removing one stays allowed: harmless (the core drops it anyway), and configs from before it was managed keep loading.
    if (op !== 'remove') for (const n of REQUEST_ONLY_MANAGED) managed.push(`${anyCase(n)}$`);
    managed.push(anyCase('x-forwarded-'));
    if (op === 'add') managed.push(`${anyCase('host')}$`);
  }
  return `^(?!(?:${managed.join('|')}))${TOKEN}$`;
}

function nameSchema(what: string, direction: 'request' | 'response', op: 'set' | 'add' | 'remove') {
  let managed = direction === 'request' ? 'X-Forwarded-*, Expect, Connection, Content-Length, Transfer-Encoding' : 'Connection, Content-Length, Transfer-Encoding';
  if (direction === 'request' && op === 'add') managed = `Host (a request has one: use set), ${managed}`;
  return {
    type: 'string',
    pattern: namePattern(direction, op),
    description: `${what} (case-insensitive; letters, digits and !#$%&'*+.^_\`|~-); not one the core manages (${managed} and the other hop-by-hop headers).`,
  };
}

const valueSchema = {
  type: 'string',
  pattern: VALUE_PATTERN,
  description: 'Header value: one line of printable characters (tab, ASCII, or Latin-1 up to U+00FF); no CR, LF or other control characters.',
};

function opsSchema(direction: 'request' | 'response') {
  const target = direction === 'request' ? 'the request sent to the backend' : 'the response sent to the client';
  return {
    type: 'object',
    additionalProperties: false,
    default: {},
    description: `Header operations on ${target}; they run in the order remove, set, add.`,
    properties: {
      set: {
        type: 'object',
        description: `Headers to set on ${target}, name → value; replaces any value already there.`,
        propertyNames: nameSchema('Header name', direction, 'set'),
        additionalProperties: valueSchema,
        default: {},
      },
      add: {
        type: 'object',
        description: `Headers to append to ${target}, name → value or list of values; values already there are kept.`,
        propertyNames: nameSchema('Header name', direction, 'add'),
        additionalProperties: {
          description: 'One value, or a list of values each appended as its own header line.',
          anyOf: [valueSchema, { type: 'array', items: valueSchema, minItems: 1 }],
        },
        default: {},
      },
      remove: {
        type: 'array',
        description: `Header names to remove from ${target}.`,
        items: nameSchema('Header name to remove', direction, 'remove'),
        uniqueItems: true,
        default: [],
      },
    },
  };
}

export const schema = {
  type: 'object',
  additionalProperties: false,
  description: 'Rewrites request and response headers.',
  properties: {
    request: opsSchema('request'),
    response: opsSchema('response'),
  },
};

function checkName(direction: 'request' | 'response', op: string, name: string): string {
  const lower = name.toLowerCase();
  const folded = lower.replaceAll('_', '-');
  if (FRAMING_SET.has(folded) || (direction === 'request' && op !== 'remove' && REQUEST_ONLY_MANAGED.includes(folded))) {
    throw new Error(`headers: ${direction}.${op} names "${name}", which the core manages (it frames the message or belongs to one connection); remove it from the headers plugin`);
  }
  if (direction === 'request' && op === 'add' && folded === 'host') {
    throw new Error(`headers: request.add names "${name}"; a request carries exactly one Host (a second one makes it unsendable), so write request.set = { "Host" = "…" } to replace it`);
  }
  if (direction === 'request' && folded.startsWith('x-forwarded-')) {
    throw new Error(`headers: ${direction}.${op} names "${name}"; the core writes X-Forwarded-* from the connection and server.trusted_proxies, so the headers plugin may not change them`);
  }
  return lower;
}

function checkValue(direction: 'request' | 'response', op: string, name: string, value: string): string {
  if (!WRITABLE_VALUE.test(value)) {
    throw new Error(
      `headers: ${direction}.${op}.${name} = ${JSON.stringify(value)} cannot be sent as a header value; use tab, printable ASCII or Latin-1 (up to U+00FF) only, no CR, LF or other control characters`,
    );
  }
  return value;
}

/** Validates and precomputes one direction's operations (done once, in create()). */
export function compileHeaderOps(config: Partial<HeaderOpsConfig> | undefined, direction: 'request' | 'response'): HeaderOps {
  const removeNames: string[] = [];
  for (const name of config?.remove ?? []) {
    const lower = checkName(direction, 'remove', name);
    if (!removeNames.includes(lower)) removeNames.push(lower);
  }
  // A later spelling of the same name (e.g. "x-a" after "X-A") wins for set;
  // add keeps every value in order.
  const set = new Map<string, string>();
  for (const [name, value] of Object.entries(config?.set ?? {})) set.set(checkName(direction, 'set', name), checkValue(direction, 'set', name, value));
  const add = new Map<string, string | string[]>();
  for (const [name, value] of Object.entries(config?.add ?? {})) {
    const lower = checkName(direction, 'add', name);
    const values = typeof value === 'string' ? [value] : [...value];
    for (const v of values) checkValue(direction, 'add', name, v);
    const prev = add.get(lower);
    const merged = prev === undefined ? values : [...(typeof prev === 'string' ? [prev] : prev), ...values];
    add.set(lower, merged.length === 1 ? merged[0]! : merged);
  }
  for (const value of add.values()) if (Array.isArray(value)) Object.freeze(value);
  const aliasNames: string[] = [];
  let scannedAliases: Set<string> | undefined;
  if (direction === 'request') {
    for (const name of [...removeNames, ...set.keys()]) {
      const folded = name.replaceAll('_', '-');
      const hyphens = folded.split('-').length - 1;
      if (hyphens > MAX_LISTED_ALIAS_HYPHENS) {
        (scannedAliases ??= new Set()).add(folded);
        if (folded !== name && !aliasNames.includes(folded)) aliasNames.push(folded);
        continue;
      }
      for (const alias of [folded, ...underscoreSpellings(folded)]) {
        if (alias !== name && !aliasNames.includes(alias)) aliasNames.push(alias);
      }
    }
  }
  return {
    aliasNames,
    scannedAliases,
    removeNames,
    setNames: [...set.keys()],
    setValues: [...set.values()],
    addNames: [...add.keys()],
    addValues: [...add.values()],
    empty: removeNames.length === 0 && set.size === 0 && add.size === 0,
  };
}

/**
 * Applies precomputed operations to a header map (lower-case names) in place.
 * Configured arrays are never stored in the map as they are: the map's arrays
 * get mutated by later appends, the configuration must not.
 */
export function applyHeaderOps(ops: HeaderOps, headers: HeaderMap): void {
  const { aliasNames, removeNames, setNames, setValues, addNames, addValues } = ops;
  for (let i = 0; i < aliasNames.length; i++) {
    // Most requests carry none of these: a lookup each, a delete only when one is there.
    if (headers[aliasNames[i]!] !== undefined) delete headers[aliasNames[i]!];
  }
  if (ops.scannedAliases !== undefined) removeScannedAliases(ops.scannedAliases, headers);
  for (let i = 0; i < removeNames.length; i++) delete headers[removeNames[i]!];
  for (let i = 0; i < setNames.length; i++) headers[setNames[i]!] = setValues[i]!;
  for (let i = 0; i < addNames.length; i++) {
    const name = addNames[i]!;
    const value = addValues[i]!;
    const existing = headers[name];
    if (existing === undefined) {
      headers[name] = typeof value === 'string' ? value : value.slice();
    } else if (typeof existing === 'string') {
      headers[name] = typeof value === 'string' ? [existing, value] : [existing, ...value];
    } else if (typeof value === 'string') {
      existing.push(value);
    } else {
      for (let j = 0; j < value.length; j++) existing.push(value[j]!);
    }
  }
}

/** Removes every header whose name has a `_` and reads as one of `folded` with `_` for `-`. */
function removeScannedAliases(folded: ReadonlySet<string>, headers: HeaderMap): void {
  for (const name in headers) {
    if (name.includes('_') && folded.has(name.replaceAll('_', '-'))) delete headers[name];
  }
}

export default definePlugin({
  name: 'headers',
  kind: 'middleware',
  description: 'Sets, appends and removes request and response headers.',
  schema,
  create(config: HeadersConfig): MiddlewareInstance {
    const request = compileHeaderOps(config.request, 'request');
    const response = compileHeaderOps(config.response, 'response');

    // Without response operations there is nothing to do after next(): return
    // its promise as it is instead of awaiting it in an async function.
    if (response.empty) {
      return {
        handle(ctx: RequestContext, next: Next): Promise<void> {
          applyHeaderOps(request, ctx.headers);
          return next();
        },
      };
    }
    return {
      async handle(ctx: RequestContext, next: Next): Promise<void> {
        if (!request.empty) applyHeaderOps(request, ctx.headers);
        await next();
        if (ctx.response !== undefined) applyHeaderOps(response, ctx.response.headers);
      },
    };
  },
});
