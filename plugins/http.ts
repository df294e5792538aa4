/**
 * http: an active health check that sends one HTTP request to each backend
 * and calls it healthy when the status is in `expect_status` (and, when
 * `expect_body` is set, the body contains it).
 *
 * ```toml
 * [pools.web.health]
 * checker = "http"
 * path = "/healthz"
 * method = "GET"
 * expect_status = "200-399"    # a range, a single status "200", or a list "200,204"
 * expect_body = "ok"           # optional substring of the first 64KB of the body
 * host = "app.example.test"    # optional Host header (default: the backend's host:port)
 * ```
 *
 * Every probe opens its own connection (no keep-alive): a check must notice a
 * backend that stopped accepting connections, which a reused socket would hide.
 *
 * To an https backend the TLS connection is made in the backend URL's name,
 * as for the traffic it is checked for — `host` sets the Host header only.
 * (Node would otherwise take the SNI name, and the name the certificate is
 * checked against, from the Host header.)
 */
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { definePlugin, type HealthDefinition, type HealthResult, type HealthTarget } from '../src/index.js';

/** An inclusive range of status codes. */
export interface StatusRange {
  readonly min: number;
  readonly max: number;
}

export interface HttpCheckConfig {
  readonly path: string;
  readonly method: string;
  readonly expect_status: string | number;
  readonly expect_body?: string;
  readonly host?: string;
}

/** How much of a body is searched for `expect_body`: health pages are small, a stream must not keep a probe open. */
export const BODY_SEARCH_LIMIT = 64 * 1024;

const STATUS = '[1-5][0-9][0-9]';
const STATUS_ITEM = `${STATUS}(\\s*-\\s*${STATUS})?`;
/** "200-399", "200", "200,204", "200-299, 304". */
export const EXPECT_STATUS_PATTERN = `^\\s*${STATUS_ITEM}(\\s*,\\s*${STATUS_ITEM})*\\s*$`;
const EXPECT_STATUS = new RegExp(EXPECT_STATUS_PATTERN);

/**
 * `expect_status` → ranges. A reversed range ("399-200") means the same set
 * as the ordered one. Throws on text the schema would have rejected.
 */
export function parseStatusRanges(spec: string | number): StatusRange[] {
  const text = String(spec);
  if (!EXPECT_STATUS.test(text)) {
    throw new TypeError(`"${text}" is not a status list: write a range "200-399", a status "200", or a list "200,204"`);
  }
  return text.split(',').map((item) => {
    const [a, b = a] = item.split('-').map((s) => Number(s.trim()));
    return { min: Math.min(a!, b!), max: Math.max(a!, b!) };
  });
}

export function statusMatches(ranges: readonly StatusRange[], status: number): boolean {
  for (let i = 0; i < ranges.length; i++) {
    if (status >= ranges[i]!.min && status <= ranges[i]!.max) return true;
  }
  return false;
}

export const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    path: {
      type: 'string',
      pattern: '^/[^\\s]*$',
      default: '/healthz',
      description: 'Path (and query) the probe requests, e.g. "/healthz".',
    },
    method: {
      type: 'string',
      pattern: '^[A-Z]+$',
      default: 'GET',
      description: 'Request method of the probe, upper case ("GET", "HEAD", …).',
    },
    expect_status: {
      anyOf: [
        { type: 'string', pattern: EXPECT_STATUS_PATTERN },
        { type: 'integer', minimum: 100, maximum: 599 },
      ],
      default: '200-399',
      description:
        'Statuses that count as healthy: a range "200-399", a single status "200" (or 200), or a comma list "200,204,300-399".',
    },
    expect_body: {
      type: 'string',
      minLength: 1,
      description: 'If set, the first 64KB of the response body must contain this text (case-sensitive).',
    },
    host: {
      type: 'string',
      minLength: 1,
      pattern: '^[^\\s/]+$',
      description: "Host header of the probe (default: the backend's host:port), for backends that route by virtual host.",
    },
  },
} as const;

/** The probe itself, exported for tests: one request, one answer. */
export function probe(
  target: HealthTarget,
  signal: AbortSignal,
  config: HttpCheckConfig,
  ranges: readonly StatusRange[],
): Promise<HealthResult> {
  return new Promise<HealthResult>((resolve, reject) => {
    let settled = false;
    const request = target.protocol === 'https:' ? https.request : http.request;
    const req = request({
      host: target.hostname,
      port: target.port,
      method: config.method,
      path: config.path,
      headers: { 'user-agent': 'switchyard-health-check', accept: '*/*', ...(config.host ? { host: config.host } : {}) },
      // '' sends no SNI (an IP address may not be one); the certificate is then checked against the IP.
      servername: isIP(target.hostname) === 0 ? target.hostname : '',
      agent: false,
      signal,
    });
    const settle = (result: HealthResult | Error): void => {
      if (settled) return;
      settled = true;
      // The answer is known: the rest of the response (if any) is not needed.
      req.destroy();
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    req.on('error', (err) => settle(err));
    req.on('response', (res) => {
      res.on('error', () => {});
      const status = res.statusCode ?? 0;
      if (!statusMatches(ranges, status)) {
        settle({ healthy: false, reason: `status ${status}` });
        return;
      }
      const expected = config.expect_body;
      if (expected === undefined) {
        settle({ healthy: true, reason: `status ${status}` });
        return;
      }
      let seen = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        seen += chunk;
        if (seen.includes(expected)) settle({ healthy: true, reason: `status ${status}, body contains "${expected}"` });
        else if (seen.length >= BODY_SEARCH_LIMIT) {
          settle({ healthy: false, reason: `body does not contain "${expected}" in its first ${BODY_SEARCH_LIMIT / 1024}KB` });
        }
      });
      res.on('end', () => settle({ healthy: false, reason: `body does not contain "${expected}"` }));
    });
    req.end();
  });
}

export default definePlugin({
  name: 'http',
  kind: 'health',
  description: 'Sends an HTTP request to `path` on each backend; healthy when the status is in `expect_status` (and the body contains `expect_body`).',
  schema,
  create(config: HttpCheckConfig) {
    const ranges = parseStatusRanges(config.expect_status);
    return {
      check: (target, signal) => probe(target, signal, config, ranges),
    };
  },
}) satisfies HealthDefinition;
