/** `lb validate` and `lb schema` through the real CLI, as a user runs them. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

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
    says: /unknown key "max_bodyy"; allowed keys here: listen, workers, max_body/,
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

test('lb validate: a missing file is a usage/IO error (exit 2)', async () => {
  const res = await lb(['validate', '-c', '/nonexistent/lb.toml']);
  assert.equal(res.code, 2);
  assert.match(res.stderr, /no such file/);
});

test('lb: an unknown command is a usage error (exit 2) with help', async () => {
  const res = await lb(['frobnicate']);
  assert.equal(res.code, 2);
  assert.match(res.stderr, /unknown command/);
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
