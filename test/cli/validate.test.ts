/** `lb validate` and `lb schema` through the real CLI, as a user runs them. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { parse } from 'smol-toml';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
const REFERENCE = fileURLToPath(new URL('../../../../shared/lb.reference.toml', import.meta.url));
const SHIPPED = fileURLToPath(new URL('../../../lb.toml', import.meta.url));

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function lb(args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 99) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function validateText(toml: string): Promise<CliResult & { file: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'lb-validate-'));
  const file = join(dir, 'lb.toml');
  try {
    await writeFile(file, toml);
    return { ...(await lb(['validate', '-c', file])), file };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const POOL = '[pools.web]\nbackends = [{ url = "http://127.0.0.1:8001" }]\n';

test('the reference configuration and the shipped lb.toml are valid (exit 0)', async () => {
  for (const file of [REFERENCE, SHIPPED]) {
    const res = await lb(['validate', '-c', file]);
    assert.equal(res.code, 0, `${file}: ${res.stderr}`);
    assert.match(res.stdout, /valid/);
  }
});

const invalid: { desc: string; toml: string; line: number; key: string; says: RegExp }[] = [
  {
    desc: 'unknown strategy',
    toml: '[pools.web]\nstrategy = "fastest"\nbackends = [{ url = "http://127.0.0.1:8001" }]\n',
    line: 2,
    key: 'pools.web.strategy',
    says: /unknown strategy plugin "fastest".*round-robin/,
  },
  {
    desc: 'backend that is not a URL',
    toml: '[pools.web]\nbackends = [\n  { url = "http://127.0.0.1:8001" },\n  { url = "localhost:8002" },\n]\n',
    line: 4,
    key: 'pools.web.backends[1].url',
    says: /not valid here.*Origin of the backend/,
  },
  {
    desc: 'interval as a number, not a duration',
    toml: `${POOL}[pools.web.health]\nchecker = "tcp"\ninterval = 5\n`,
    line: 5,
    key: 'pools.web.health.interval',
    says: /must be a duration string such as "250ms".*got the number 5/,
  },
  {
    desc: 'unknown plugin in the pipeline',
    toml: `${POOL}\n[[pipeline]]\nplugin = "compress-everything"\n`,
    line: 5,
    key: 'pipeline[0].plugin',
    says: /unknown middleware plugin "compress-everything"/,
  },
  {
    desc: 'missing pools',
    toml: '[server]\nlisten = "127.0.0.1:8080"\n',
    line: 1,
    key: '',
    says: /missing required key "pools"/,
  },
  {
    desc: 'a route naming a missing pool',
    toml: `${POOL}\n[[routes]]\nmatch = { path_prefix = "/" }\npool = "api"\n`,
    line: 6,
    key: 'routes[0].pool',
    says: /pool "api" is not defined; defined pools: web/,
  },
  {
    desc: 'unknown key with the allowed ones listed',
    toml: `[server]\nlisten = "127.0.0.1:8080"\nmax_bodyy = "1MB"\n${POOL}`,
    line: 3,
    key: 'server.max_bodyy',
    says: /unknown key "max_bodyy"; allowed keys here: listen, workers, max_connections, max_body/,
  },
  {
    desc: 'a health interval longer than a timer can wait',
    toml: `${POOL}[pools.web.health]\nchecker = "tcp"\ninterval = "1000h"\n`,
    line: 5,
    key: 'pools.web.health.interval',
    says: /must be at most "500h", about 20 days: Node's timers cannot wait longer than 24\.8 days \(got "1000h"\)/,
  },
  {
    desc: 'a health interval of 0',
    toml: `${POOL}[pools.web.health]\nchecker = "tcp"\ninterval = "0ms"\n`,
    line: 5,
    key: 'pools.web.health.interval',
    says: /must be longer than 0 \(got "0ms"\)/,
  },
  {
    desc: 'a shutdown grace of 25 days',
    toml: `[server]\nshutdown_grace = "600h"\n${POOL}`,
    line: 2,
    key: 'server.shutdown_grace',
    says: /must be at most "500h"/,
  },
  {
    desc: 'a listen port past 65535',
    toml: `[server]\nlisten = "127.0.0.1:99999"\n${POOL}`,
    line: 2,
    key: 'server.listen',
    says: /port 99999 is out of range: write a port from 1 to 65535 \(or 0 for any free port\)/,
  },
  {
    desc: 'a listen address that is no IPv4 address',
    toml: `[server]\nlisten = "999.1.1.1:8080"\n${POOL}`,
    line: 2,
    key: 'server.listen',
    says: /"999\.1\.1\.1" is not an IPv4 address: write four numbers from 0 to 255/,
  },
  {
    desc: 'the admin listener on the traffic port',
    toml: `[server]\nlisten = "127.0.0.1:18089"\n[admin]\nlisten = "127.0.0.1:18089"\n${POOL}`,
    line: 4,
    key: 'admin.listen',
    says: /takes the port of server\.listen .*give the admin listener a port of its own/,
  },
  {
    // Valid to the name pattern, but a JavaScript object cannot hold it as a key: `lb run` failed on it.
    desc: 'a pool named __proto__',
    toml: '[pools.__proto__]\nbackends = [{ url = "http://127.0.0.1:8001" }]\n',
    line: 1,
    key: 'pools.__proto__',
    says: /"__proto__" is not valid here/,
  },
  {
    desc: 'TOML syntax error',
    toml: `${POOL}[server\nlisten = "x"\n`,
    line: 3,
    key: '',
    says: /TOML syntax error/,
  },
];

for (const c of invalid) {
  test(`lb validate: ${c.desc} → exit 1, names the key and line`, async () => {
    const res = await validateText(c.toml);
    assert.equal(res.code, 1, res.stderr);
    const first = res.stderr.split('\n')[0]!;
    const where = `${res.file}:${c.line}:`;
    assert.ok(first.startsWith(where), `expected "${where}…", got: ${first}`);
    if (c.key !== '') assert.ok(first.includes(` ${c.key}: `), `expected key ${c.key} in: ${first}`);
    assert.match(first, c.says);
  });
}

test('lb validate: a core-schema problem does not hide the plugin-table and route problems after it', async () => {
  const res = await validateText(`[server]
listen = "127.0.0.1:99999"

[pools.web]
strategy = { plugin = "consistent-hash", replicas = "many" }
backends = [{ url = "http://127.0.0.1:8001", weight = -2 }]

[pools.web.health]
checker = "http"
path = 5

[[routes]]
match = { path_prefix = "/" }
pool = "api"

[[pipeline]]
plugin = "sticky-session"
same_site = "Sideways"
`);
  assert.equal(res.code, 1, res.stderr);
  const lines = res.stderr.trimEnd().split('\n');
  const where = (line: number, col: number, key: string) => `${res.file}:${line}:${col} ${key}: `;
  const expected = [
    where(2, 1, 'server.listen'),
    where(5, 42, 'pools.web.strategy.replicas'),
    where(6, 46, 'pools.web.backends[0].weight'),
    where(10, 1, 'pools.web.health.path'),
    where(14, 1, 'routes[0].pool'),
    where(18, 1, 'pipeline[0].same_site'),
  ];
  assert.equal(lines.length, expected.length + 1, res.stderr);
  expected.forEach((prefix, i) => assert.ok(lines[i]!.startsWith(prefix), `line ${i + 1}: expected "${prefix}…", got: ${lines[i]}`));
  assert.match(lines.at(-1)!, /^6 problem\(s\) in /);
});

test('lb validate: shutdown_grace = "0s" (cut at once) and the longest durations are valid', async () => {
  const res = await validateText(`[server]\nshutdown_grace = "0s"\nidle_timeout = "500h"\n${POOL}[pools.web.health]\nchecker = "tcp"\ninterval = "500h"\n`);
  assert.equal(res.code, 0, res.stderr);
});

test('lb validate: a missing file is a usage/IO error (exit 2)', async () => {
  const res = await lb(['validate', '-c', '/nonexistent/lb.toml']);
  assert.equal(res.code, 2);
  assert.match(res.stderr, /no such file/);
});

test('lb validate and lb run: a directory given as the config says so and what to pass (exit 2)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lb-dir-'));
  try {
    for (const command of ['validate', 'run']) {
      const res = await lb([command, '-c', dir]);
      assert.equal(res.code, 2, command);
      assert.match(res.stderr, /is a directory; pass the config file itself with -c PATH\/lb\.toml/, command);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('lb: an unknown command is a usage error (exit 2) with help', async () => {
  const res = await lb(['frobnicate']);
  assert.equal(res.code, 2);
  assert.match(res.stderr, /unknown command/);
});

test('lb run: a log level other than the listed ones is a usage error (exit 2) that lists them, from --log-level or LB_LOG_LEVEL', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lb-log-level-'));
  const file = join(dir, 'lb.toml');
  try {
    await writeFile(file, `[server]\nlisten = "127.0.0.1:0"\n${POOL}`);
    const byFlag = await lb(['run', '-c', file, '--no-watch', '--log-level', 'verbose']);
    const byEnv = await new Promise<CliResult>((resolve) => {
      const env = { ...process.env, LB_LOG_LEVEL: 'verbose' };
      execFile(process.execPath, [CLI, 'run', '-c', file, '--no-watch'], { timeout: 20_000, env }, (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 99) : 0, stdout, stderr });
      });
    });
    for (const [how, res] of [['--log-level', byFlag], ['LB_LOG_LEVEL', byEnv]] as const) {
      assert.equal(res.code, 2, how);
      assert.match(res.stderr, /'verbose'.* is invalid\. Allowed choices are trace, debug, info, warn, error\./, `${how}: ${res.stderr}`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('lb schema prints a JSON Schema that describes every core key and folds in plugin schemas', async () => {
  const res = await lb(['schema']);
  assert.equal(res.code, 0, res.stderr);
  const schema = JSON.parse(res.stdout);
  assert.equal(schema.title, 'Switchyard lb.toml');
  const pool = schema.properties.pools.additionalProperties;
  assert.ok(pool.properties.strategy.anyOf[0].enum.includes('consistent-hash'));
  // Every property in the core part has a description.
  const missing: string[] = [];
  const walk = (node: any, path: string) => {
    if (!node || typeof node !== 'object') return;
    for (const [key, sub] of Object.entries<any>(node.properties ?? {})) {
      if (sub !== true && !sub.description) missing.push(`${path}.${key}`);
      walk(sub, `${path}.${key}`);
    }
    if (node.items) walk(node.items, `${path}[]`);
    if (node.additionalProperties && typeof node.additionalProperties === 'object') walk(node.additionalProperties, `${path}.*`);
  };
  walk(schema, '');
  assert.deepEqual(missing, []);
});

test('lb schema compiles in a strict validator (ajv defaults) and accepts the reference configuration', async () => {
  const res = await lb(['schema']);
  assert.equal(res.code, 0, res.stderr);
  const warnings: string[] = [];
  const ajv = new Ajv({ allErrors: true, logger: { log() {}, warn: (m: string) => warnings.push(m), error: (m: string) => warnings.push(m) } });
  // Throws "strict mode: unknown keyword" on a keyword of the loader's own.
  const validate = ajv.compile(JSON.parse(res.stdout));
  assert.deepEqual(warnings, []);
  for (const file of [REFERENCE, SHIPPED]) {
    assert.equal(validate(parse(await readFile(file, 'utf8'))), true, `${file}: ${JSON.stringify(validate.errors)}`);
  }
});
