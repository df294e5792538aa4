/**
 * loadConfigText: every problem is reported at once, at its line and key;
 * durations and addresses are refused where they cannot work.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigText } from '../../src/config/load.js';
import { ConfigError, type ConfigIssue } from '../../src/config/issues.js';

const FILE = '/tmp/lb-load-test/lb.toml';
const POOL = '[pools.web]\nbackends = [{ url = "http://127.0.0.1:8001" }]\n';

/** The issues loading `toml` gives, as "line key: message"; [] when it loads. */
async function issuesOf(toml: string): Promise<string[]> {
  try {
    await loadConfigText(toml, FILE);
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.issues.map((i: ConfigIssue) => `${i.line} ${i.keyPath}: ${i.message}`);
  }
}

/** Each duration key of the core and of rate-limit, with a TOML document that sets it on line 3 (or where stated). */
const durationKeys: { key: string; toml: (value: string) => string; line: number; zeroAllowed?: boolean }[] = [
  { key: 'server.headers_timeout', toml: (v) => `[server]\nlisten = "127.0.0.1:0"\nheaders_timeout = "${v}"\n${POOL}`, line: 3 },
  { key: 'server.body_timeout', toml: (v) => `[server]\nlisten = "127.0.0.1:0"\nbody_timeout = "${v}"\n${POOL}`, line: 3 },
  { key: 'server.idle_timeout', toml: (v) => `[server]\nlisten = "127.0.0.1:0"\nidle_timeout = "${v}"\n${POOL}`, line: 3 },
  { key: 'server.shutdown_grace', toml: (v) => `[server]\nlisten = "127.0.0.1:0"\nshutdown_grace = "${v}"\n${POOL}`, line: 3, zeroAllowed: true },
  { key: 'pools.web.connect_timeout', toml: (v) => `${POOL}connect_timeout = "${v}"\n`, line: 3 },
  { key: 'pools.web.response_timeout', toml: (v) => `${POOL}response_timeout = "${v}"\n`, line: 3 },
  { key: 'pools.web.passive_cooldown', toml: (v) => `${POOL}passive_cooldown = "${v}"\n`, line: 3 },
  { key: 'pools.web.health.interval', toml: (v) => `${POOL}[pools.web.health]\ninterval = "${v}"\n`, line: 4 },
  { key: 'pools.web.health.timeout', toml: (v) => `${POOL}[pools.web.health]\ntimeout = "${v}"\n`, line: 4 },
  {
    key: 'pipeline[0].redis_timeout',
    toml: (v) => `${POOL}[[pipeline]]\nplugin = "rate-limit"\nrate = 1\nburst = 1\nredis_timeout = "${v}"\n`,
    line: 7,
  },
];

for (const d of durationKeys) {
  test(`${d.key}: "500h" loads; "501h" and${d.zeroAllowed ? '' : ' "0ms" and'} "1000h" are refused at line ${d.line}`, async () => {
    assert.deepEqual(await issuesOf(d.toml('500h')), []);
    assert.deepEqual(await issuesOf(d.toml('1ms')), []);
    assert.deepEqual(await issuesOf(d.toml('501h')), [
      `${d.line} ${d.key}: must be at most "500h", about 20 days: Node's timers cannot wait longer than 24.8 days (got "501h")`,
    ]);
    assert.equal((await issuesOf(d.toml('1000h'))).length, 1);
    if (d.zeroAllowed) assert.deepEqual(await issuesOf(d.toml('0s')), []);
    else assert.deepEqual(await issuesOf(d.toml('0ms')), [`${d.line} ${d.key}: must be longer than 0 (got "0ms")`]);
  });
}

test('retry backoff: up to a minute (a retry waits up to 15 times it); "0ms" retries at once', async () => {
  const toml = (v: string) => `${POOL}[[pipeline]]\nplugin = "retry"\nbackoff = "${v}"\n`;
  assert.deepEqual(await issuesOf(toml('1m')), []);
  assert.deepEqual(await issuesOf(toml('0ms')), []);
  assert.deepEqual(await issuesOf(toml('61s')), ['5 pipeline[0].backoff: must be at most "1m" (got "61s")']);
});

test('a duration outside its bounds is a config error, not a value that loads (the loaded value is what the timer gets)', async () => {
  const config = await loadConfigText(`${POOL}[pools.web.health]\ninterval = "500h"\n`, FILE);
  assert.equal(config.pools.web!.health!.interval, 1_800_000_000);
});

test('server.max_connections: optional (unset: derived at start), an integer of at least 1', async () => {
  const toml = (v: string) => `[server]\nlisten = "127.0.0.1:0"\nmax_connections = ${v}\n${POOL}`;
  assert.equal((await loadConfigText(POOL, FILE)).server.maxConnections, undefined);
  assert.equal((await loadConfigText(toml('5'), FILE)).server.maxConnections, 5);
  assert.deepEqual(await issuesOf(toml('0')), ['3 server.max_connections: must be >= 1']);
  assert.deepEqual(await issuesOf(toml('2.5')), ['3 server.max_connections: must be integer (got the number 2.5)']);
});

test('listen addresses: ports past 65535, impossible IPv4 addresses and two listeners on one port are refused where written', async () => {
  assert.deepEqual(await issuesOf(`[server]\nlisten = "127.0.0.1:99999"\n${POOL}`), [
    '2 server.listen: port 99999 is out of range: write a port from 1 to 65535 (or 0 for any free port)',
  ]);
  assert.deepEqual(await issuesOf(`[server]\nlisten = "999.1.1.1:8080"\n${POOL}`), [
    '2 server.listen: "999.1.1.1" is not an IPv4 address: write four numbers from 0 to 255 without leading zeros, e.g. "127.0.0.1"',
  ]);
  assert.deepEqual(await issuesOf(`[admin]\nlisten = "[::1]:70000"\n${POOL}`), [
    '2 admin.listen: port 70000 is out of range: write a port from 1 to 65535 (or 0 for any free port)',
  ]);
  assert.deepEqual(await issuesOf(`[server]\nlisten = ":8080"\n[admin]\nlisten = "127.0.0.1:8080"\n${POOL}`), [
    '4 admin.listen: "127.0.0.1:8080" takes the port of server.listen (":8080"): give the admin listener a port of its own',
  ]);
  // The default server.listen is 127.0.0.1:8080 too.
  assert.equal((await issuesOf(`[admin]\nlisten = "127.0.0.1:8080"\n${POOL}`)).length, 1);
  assert.deepEqual(await issuesOf(`[server]\nlisten = "127.0.0.1:0"\n[admin]\nlisten = "127.0.0.1:0"\n${POOL}`), []);
});

test('backend URLs that cannot be connected to are refused where written', async () => {
  assert.deepEqual(await issuesOf('[pools.web]\nbackends = [\n  { url = "http://127.0.0.1:8001" },\n  { url = "http://127.0.0.1:99999" },\n]\n'), [
    '4 pools.web.backends[1].url: port 99999 is out of range: write a port from 1 to 65535',
  ]);
});

// One mistake in each part: the core schema's, a strategy's options, a
// health checker's options, a route's pool, a route plugin, a global plugin.
const MANY = `[server]
listen = "127.0.0.1:99999"
bogus = 1

[pools.web]
strategy = { plugin = "consistent-hash", key = "client-ip", replicas = "many" }
backends = [
  { url = "http://127.0.0.1:8001" },
  { url = "http://127.0.0.1:8002", weight = -2 },
]

[pools.web.health]
checker = "http"
path = 5
interval = "0ms"

[[routes]]
match = { path_prefix = "/", methods = ["get"] }
pool = "api"

  [[routes.pipeline]]
  plugin = "retry"
  attempts = "three"

[[pipeline]]
plugin = "sticky-session"
same_site = "Sideways"

[[pipeline]]
plugin = "no-such-plugin"
`;

test('a core-schema problem hides none of the others: plugin tables and pool references are still checked, and all come in file order', async () => {
  assert.deepEqual(await issuesOf(MANY), [
    '2 server.listen: port 99999 is out of range: write a port from 1 to 65535 (or 0 for any free port)',
    '3 server.bogus: unknown key "bogus"; allowed keys here: listen, workers, max_connections, max_body, max_header_size, max_headers_count, headers_timeout, body_timeout, idle_timeout, send_timeout, shutdown_grace, trusted_proxies, forwarded_header, tls',
    '6 pools.web.strategy.replicas: must be integer (got the string "many")',
    '9 pools.web.backends[1].weight: must be >= 1',
    '14 pools.web.health.path: must be string (got the number 5)',
    '15 pools.web.health.interval: must be longer than 0 (got "0ms")',
    '18 routes[0].match.methods[0]: the string "get" is not valid here',
    '19 routes[0].pool: pool "api" is not defined; defined pools: web',
    '23 routes[0].pipeline[0].attempts: must be integer (got the string "three")',
    '27 pipeline[0].same_site: must be one of "Strict", "Lax", "None" (got the string "Sideways")',
    '30 pipeline[1].plugin: unknown middleware plugin "no-such-plugin": built-in middleware plugins are circuit-breaker, headers, rate-limit, retry, sticky-session; a third-party plugin is a path starting with ./ (relative to the config file) or an installed npm package',
  ]);
});

const noCascades: { desc: string; toml: string; issues: string[] }[] = [
  {
    desc: '[pools] that is not a table: no "pool is not defined" for the routes naming it',
    toml: 'pools = "web"\n[[routes]]\npool = "web"\n',
    issues: ['1 pools: must be object (got the string "web")'],
  },
  {
    desc: 'an empty [pools]: no "pool is not defined" either',
    toml: '[pools]\n[[routes]]\npool = "web"\n',
    issues: ['1 pools: must have at least one entry'],
  },
  {
    desc: 'a pipeline entry without `plugin`: no plugin is looked up',
    toml: `${POOL}[[pipeline]]\nrate = 1\n`,
    issues: ['3 pipeline[0]: missing required key "plugin"'],
  },
  {
    desc: 'a checker that is not a string: its options are not checked against some other checker',
    toml: `${POOL}[pools.web.health]\nchecker = 5\npath = 5\n`,
    issues: ['4 pools.web.health.checker: must be string (got the number 5)'],
  },
  {
    desc: 'a pool that is not a table: nothing inside it is checked',
    toml: '[pools]\nweb = 5\n',
    issues: ['2 pools.web: must be object (got the number 5)'],
  },
  {
    desc: 'a backend with a bad URL is not compared for duplicates',
    toml: '[pools.web]\nbackends = [{ url = "http://127.0.0.1:99999" }, { url = "http://127.0.0.1:99999" }]\n',
    issues: [
      '2 pools.web.backends[0].url: port 99999 is out of range: write a port from 1 to 65535',
      '2 pools.web.backends[1].url: port 99999 is out of range: write a port from 1 to 65535',
    ],
  },
  {
    desc: 'header names the headers plugin refuses: each at its own key, no summary line that says nothing',
    toml: `${POOL}[[pipeline]]\nplugin = "headers"\nrequest.set = { "X-Ok" = "1", "Transfer-Encoding" = "x" }\nresponse.remove = ["Connection"]\n`,
    issues: [
      '5 pipeline[0].request.set.Transfer-Encoding: the string "Transfer-Encoding" is not valid here — Header name (case-insensitive; letters, digits and !#$%&\'*+.^_`|~-); not one the core manages (X-Forwarded-*, Expect, Connection, Content-Length, Transfer-Encoding and the other hop-by-hop headers).',
      '6 pipeline[0].response.remove[0]: the string "Connection" is not valid here — Header name to remove (case-insensitive; letters, digits and !#$%&\'*+.^_`|~-); not one the core manages (Connection, Content-Length, Transfer-Encoding and the other hop-by-hop headers).',
    ],
  },
  {
    desc: 'a listen address that is refused is not compared with the other listener',
    toml: `[server]\nlisten = "127.0.0.1:99999"\n[admin]\nlisten = "127.0.0.1:99999"\n${POOL}`,
    issues: [
      '2 server.listen: port 99999 is out of range: write a port from 1 to 65535 (or 0 for any free port)',
      '4 admin.listen: port 99999 is out of range: write a port from 1 to 65535 (or 0 for any free port)',
    ],
  },
];

for (const row of noCascades) {
  test(`no made-up follow-on errors: ${row.desc}`, async () => {
    assert.deepEqual(await issuesOf(row.toml), row.issues);
  });
}
