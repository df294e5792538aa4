/**
 * The JSON Schema of lb.toml's core keys. Plugin tables are open here
 * (`plugin` required, anything else allowed) and validated afterwards by each
 * plugin's own schema, so a plugin's options never need a core change.
 * Every property has a description: `lb schema` and the docs come from it.
 */
import { durationSchema, MAX_TIMER_DURATION, sizeSchema, TIMER_BOUNDS } from '../units.js';
import { BACKEND_URL_PATTERN, LISTEN_PATTERN } from './addresses.js';
import type { JsonSchema } from '../plugin/types.js';

const pluginName = {
  type: 'string',
  minLength: 1,
  description:
    'A plugin: a built-in name, a path relative to this file ("./my-plugin.js"), or an npm package name.',
};

/** A `[[pipeline]]` or `[[routes.pipeline]]` entry: the plugin's own keys are checked by its schema. */
export const pluginTableSchema: JsonSchema = {
  type: 'object',
  required: ['plugin'],
  properties: { plugin: pluginName },
  additionalProperties: true,
  description: 'A middleware plugin and its options. Plugins run in the order they are listed.',
};

const listenSchema = (what: string, def?: string) => ({
  type: 'string',
  pattern: LISTEN_PATTERN,
  listenAddress: true,
  description: `${what} as host:port ("127.0.0.1:8080", "[::1]:8080", ":8080" for every address); the host is an IPv4 address, an IPv6 address in brackets or a host name, the port 0-65535 (0: any free port).`,
  ...(def === undefined ? {} : { default: def }),
});

/** Keys of a pool's `health` table that the core's scheduler owns; the rest go to the checker plugin. */
export const HEALTH_CORE_KEYS = ['checker', 'interval', 'timeout', 'unhealthy_after', 'healthy_after'] as const;

const healthSchema: JsonSchema = {
  type: 'object',
  description: 'Active health checks for this pool. Without this table only passive failure detection applies.',
  properties: {
    checker: { ...pluginName, default: 'http', description: 'The health-check plugin: http | tcp | a path or package.' },
    interval: durationSchema('Time between two probes of one backend.', '5s', TIMER_BOUNDS),
    timeout: durationSchema('A probe taking longer than this counts as failed.', '1s', TIMER_BOUNDS),
    unhealthy_after: {
      type: 'integer',
      minimum: 1,
      default: 2,
      description: 'Consecutive failed probes before a backend leaves rotation.',
    },
    healthy_after: {
      type: 'integer',
      minimum: 1,
      default: 1,
      description: 'Consecutive successful probes before a backend returns to rotation.',
    },
  },
  additionalProperties: true,
};

const backendSchema: JsonSchema = {
  type: 'object',
  required: ['url'],
  additionalProperties: false,
  description: 'One backend server.',
  properties: {
    url: {
      type: 'string',
      pattern: BACKEND_URL_PATTERN,
      backendUrl: true,
      description: 'Origin of the backend: scheme, host and port, e.g. "http://127.0.0.1:8001" (no path).',
    },
    weight: {
      type: 'integer',
      minimum: 1,
      maximum: 1000,
      default: 1,
      description: 'Relative share of traffic for weighted strategies.',
    },
  },
};

const poolSchema: JsonSchema = {
  type: 'object',
  required: ['backends'],
  additionalProperties: false,
  description: 'A pool of backends that routes send traffic to.',
  properties: {
    strategy: {
      description:
        'How a backend is picked: a strategy plugin name (round-robin | weighted-round-robin | least-connections | ip-hash | consistent-hash | p2c | ./my-strategy.js), or a table { plugin = "…", …options }.',
      default: 'round-robin',
      anyOf: [pluginName, { ...pluginTableSchema, description: 'A strategy plugin and its options.' }],
    },
    connect_timeout: durationSchema('Time allowed to open a connection to a backend; past it the attempt fails (504).', '2s', TIMER_BOUNDS),
    response_timeout: durationSchema(
      'Time from sending the request to the response head (restarted by each piece of a request body still being sent), and the longest pause inside a response body; past it: 504 (before the head) or a cut connection (after it).',
      '30s',
      TIMER_BOUNDS,
    ),
    max_connections: {
      type: 'integer',
      minimum: 1,
      default: 256,
      description: 'Most connections open to each backend; further requests wait in a bounded queue.',
    },
    max_queue: {
      type: 'integer',
      minimum: 0,
      default: 1024,
      description:
        'Requests that may wait for a connection to one backend while all `max_connections` are busy; past this the request is answered 503 at once.',
    },
    passive_failures: {
      type: 'integer',
      minimum: 0,
      default: 3,
      description:
        'Consecutive connect failures, resets or invalid responses on real traffic that take a backend out of rotation at once (0: never). Active checks bring it back; without a health table it returns after `passive_cooldown`.',
    },
    passive_cooldown: durationSchema('With no active health checks: how long a backend marked down by passive detection stays out (to never take backends out on real traffic, set passive_failures = 0).', '10s', TIMER_BOUNDS),
    backends: { type: 'array', minItems: 1, items: backendSchema, description: 'The backends of this pool.' },
    health: healthSchema,
  },
};

const routeSchema: JsonSchema = {
  type: 'object',
  required: ['pool'],
  additionalProperties: false,
  description: 'A route: requests that match go to `pool`. Routes are tried in order; the first match wins.',
  properties: {
    name: { type: 'string', description: 'A name for logs and metrics (default: the route index).' },
    match: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'What a request must match; every key given must match. Empty: every request.',
      properties: {
        host: {
          type: 'string',
          minLength: 1,
          description: 'Host header, compared case-insensitively without its port or a trailing dot. "*.example.com" matches subdomains.',
        },
        path_prefix: {
          type: 'string',
          pattern: '^/',
          description: 'A plain string prefix of the request path, e.g. "/api/".',
        },
        methods: {
          type: 'array',
          minItems: 1,
          items: { type: 'string', pattern: '^[A-Z]+$' },
          description: 'Request methods in upper case, e.g. ["GET", "HEAD"].',
        },
      },
    },
    pool: { type: 'string', minLength: 1, description: 'Name of the pool in [pools] that serves this route.' },
    pipeline: {
      type: 'array',
      items: pluginTableSchema,
      default: [],
      description: 'Plugins for this route only; they run after the global [[pipeline]].',
    },
  },
};

export const coreSchema: JsonSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://switchyard.dev/lb.schema.json',
  title: 'Switchyard lb.toml',
  type: 'object',
  required: ['pools'],
  additionalProperties: false,
  properties: {
    server: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'The traffic listener and its limits.',
      properties: {
        listen: listenSchema('Address of the proxy listener', '127.0.0.1:8080'),
        workers: {
          default: 1,
          description:
            'Processes serving traffic: a number, or "auto" for one per core. Above 1, a primary process (node:cluster) reads lb.toml, runs the health checks and the admin API and restarts workers that crash; a reload that changes it starts or stops workers, but going from 1 to more needs a restart.',
          anyOf: [
            { type: 'integer', minimum: 1, maximum: 256 },
            { type: 'string', enum: ['auto'] },
          ],
        },
        max_connections: {
          type: 'integer',
          minimum: 1,
          description:
            'Most client connections the traffic listener holds open at once; past it a new connection is closed at once, unanswered, a warning logged, and the refusal counted (/metrics: switchyard_client_connections_refused_total; /status: client_connections.refused). With workers above 1 each worker takes ceil(max_connections / workers). Default: per process, half of what the open-files limit (ulimit -n) leaves after 64 — each proxied connection also needs a backend connection, and health checks, config reads and logs need descriptors too; no limit when the open-files limit is unlimited or unknown (not Linux). A reload applies it to new connections; open ones are never cut.',
        },
        max_body: sizeSchema('Request bodies larger than this get 413.', '10MB'),
        max_header_size: sizeSchema('Request header sections larger than this get 431.', '16KB'),
        max_headers_count: {
          type: 'integer',
          minimum: 1,
          maximum: 10000,
          default: 100,
          description: 'Requests with more header fields than this get 431 (nothing is forwarded with a truncated header set).',
        },
        headers_timeout: durationSchema('A client must finish sending its header section within this.', '10s', TIMER_BOUNDS),
        body_timeout: durationSchema(
          'Longest pause allowed between two pieces of a request body while Switchyard is reading it; past it the upload is cut (408).',
          '30s',
          TIMER_BOUNDS,
        ),
        idle_timeout: durationSchema('Keep-alive client connections idle longer than this are closed; also the inactivity limit of a WebSocket tunnel.', '60s', TIMER_BOUNDS),
        send_timeout: durationSchema(
          'A client that stops taking a response (what was written to it stays unread) for this long is cut, and the backend request cancelled (nginx: send_timeout).',
          '60s',
          TIMER_BOUNDS,
        ),
        shutdown_grace: durationSchema(
          'On SIGTERM/SIGINT: stop accepting, let in-flight requests finish for this long, then exit ("0s": cut them at once).',
          '10s',
          { max: MAX_TIMER_DURATION },
        ),
        trusted_proxies: {
          type: 'array',
          default: [],
          items: { type: 'string', pattern: '^[0-9a-fA-F:.]+(/\\d{1,3})?$' },
          description:
            'CIDRs (or single addresses) of proxies in front of Switchyard: their X-Forwarded-* headers are extended instead of replaced.',
        },
        forwarded_header: {
          type: 'boolean',
          default: false,
          description:
            'Also send the RFC 7239 Forwarded header (for=…;host=…;proto=…), built like X-Forwarded-*, which are always sent. Off: a Forwarded header from a client that is not in trusted_proxies is removed, so a backend never sees a forged one.',
        },
        tls: {
          type: 'object',
          required: ['cert', 'key'],
          additionalProperties: false,
          description: 'Terminate TLS on the listener (HTTPS).',
          properties: {
            cert: { type: 'string', description: 'PEM certificate chain, a path relative to this file.' },
            key: { type: 'string', description: 'PEM private key, a path relative to this file.' },
          },
        },
      },
    },
    admin: {
      type: 'object',
      additionalProperties: false,
      required: ['listen'],
      description: 'The admin listener: /healthz, /status (JSON), /metrics (Prometheus), / (dashboard). Off when absent.',
      properties: { listen: listenSchema('Address of the admin listener') },
    },
    pools: {
      type: 'object',
      minProperties: 1,
      description: 'Backend pools by name.',
      additionalProperties: poolSchema,
      // Not "__proto__": the name is a key of plain objects in the core (JSON.parse and TOML keep it, `obj[name]` cannot).
      propertyNames: {
        pattern: '^(?!__proto__$)[A-Za-z0-9_.-]+$',
        description: 'A pool name: letters, digits, "_", "." and "-" (not "__proto__").',
      },
    },
    routes: {
      type: 'array',
      items: routeSchema,
      default: [],
      description: 'Routes, tried in order. With none and exactly one pool, every request goes to that pool.',
    },
    pipeline: {
      type: 'array',
      items: pluginTableSchema,
      default: [],
      description: 'The global pipeline: middleware plugins run in this order for every request, before the route\'s own.',
    },
  },
};
