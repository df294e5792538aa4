/**
 * Third-party plugins as users write them without any tooling: a plain
 * object default-exported from a .mjs next to lb.toml, importing nothing
 * from switchyard. Loaded by path, validated by their own schema (`lb
 * validate` names a missing key and its line), and used on real traffic.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSwitchyard } from '../../src/testing.js';
import { startBackend, startBackends } from '../helpers/backends.js';
import { countBodies, request } from '../helpers/http-client.js';
import { runLb } from '../helpers/lb-process.js';

const STAMP_MJS = `
// No import of switchyard: the shape is the contract.
export default {
  name: 'stamp',
  kind: 'middleware',
  schema: {
    type: 'object',
    required: ['header'],
    additionalProperties: false,
    properties: {
      header: { type: 'string', description: 'Request header to set.' },
      value: { type: 'string', default: 'stamped', description: 'Its value.' },
    },
  },
  create(config) {
    return {
      async handle(ctx, next) {
        ctx.headers[config.header.toLowerCase()] = config.value;
        await next();
        ctx.response.headers['x-stamped-by'] = 'stamp';
      },
    };
  },
};
`;

const LAST_MJS = `
export default {
  kind: 'strategy',
  schema: { type: 'object', properties: { index: { type: 'integer', default: -1, description: 'Which candidate; negative counts from the end.' } } },
  create(config) {
    return { pick: (candidates) => candidates.at(config.index) };
  },
};
`;

test('a plain-object .mjs middleware next to lb.toml runs on real traffic', async (t) => {
  const backend = await startBackend('echo', (req, res) => res.end(String(req.headers['x-team'])));
  const sy = await startSwitchyard({
    files: { 'stamp.mjs': STAMP_MJS },
    toml: `[server]\nlisten = "127.0.0.1:0"\n[pools.web]\nbackends = [{ url = "${backend.url}" }]\n\n[[pipeline]]\nplugin = "./stamp.mjs"\nheader = "X-Team"\nvalue = "blue"\n`,
  });
  t.after(async () => {
    await sy.close();
    await backend.close();
  });
  const res = await request(sy.url);
  assert.equal(res.status, 200);
  assert.equal(res.body, 'blue', 'the backend saw the header the plugin set');
  assert.equal(res.headers['x-stamped-by'], 'stamp');
});

test('a .mjs strategy, by string and by table, picks the backends', async (t) => {
  const backends = await startBackends(3);
  const list = backends.map((b) => `{ url = "${b.url}" }`).join(', ');
  const sy = await startSwitchyard({
    files: { 'my-strategy.mjs': LAST_MJS },
    toml: `[server]\nlisten = "127.0.0.1:0"\n[pools.web]\nstrategy = "./my-strategy.mjs"\nbackends = [${list}]\n`,
  });
  t.after(async () => {
    await sy.close();
    await Promise.all(backends.map((b) => b.close()));
  });
  assert.deepEqual(await countBodies(sy.url, 20), { b3: 20 });
  await sy.reload(`[server]\nlisten = "127.0.0.1:0"\n[pools.web]\nstrategy = { plugin = "./my-strategy.mjs", index = 0 }\nbackends = [${list}]\n`);
  assert.deepEqual(await countBodies(sy.url, 20), { b1: 20 });
});

test('lb validate checks a third-party table against its schema: missing key by name and line, unknown key, bad module', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'lb-validate-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'stamp.mjs'), STAMP_MJS);
  await writeFile(join(dir, 'not-a-plugin.mjs'), 'export default { hello: "world" };\n');
  const file = join(dir, 'lb.toml');
  const toml = `[pools.web]
backends = [{ url = "http://127.0.0.1:8001" }]

[[pipeline]]
plugin = "./stamp.mjs"
value = "blue"

[[pipeline]]
plugin = "./stamp.mjs"
header = "X-A"
colour = "red"

[[pipeline]]
plugin = "./not-a-plugin.mjs"
`;
  await writeFile(file, toml);
  const { code, stderr } = await runLb(['validate', '-c', file]);
  assert.equal(code, 1, stderr);
  const lines = stderr.trim().split('\n');
  assert.ok(lines.includes(`${file}:4:1 pipeline[0]: missing required key "header"`), stderr);
  assert.ok(lines.includes(`${file}:11:1 pipeline[1].colour: unknown key "colour"; allowed keys here: header, value`), stderr);
  assert.ok(
    lines.some((l) => l.startsWith(`${file}:14:1 pipeline[2].plugin: plugin "./not-a-plugin.mjs" is not a plugin definition`)),
    stderr,
  );
  assert.equal(lines.at(-1), `3 problem(s) in ${file}`);

  await writeFile(file, `[pools.web]\nbackends = [{ url = "http://127.0.0.1:8001" }]\n\n[[pipeline]]\nplugin = "./stamp.mjs"\nheader = "X-A"\n`);
  const ok = await runLb(['validate', '-c', file]);
  assert.equal(ok.code, 0, ok.stderr);
});

test('a create() that returns the wrong hooks is refused at its plugin key, before any traffic', async () => {
  const toml = `[server]\nlisten = "127.0.0.1:0"\n[pools.web]\nbackends = [{ url = "http://127.0.0.1:1" }]\n\n[[pipeline]]\nplugin = "./confused.mjs"\n`;
  await assert.rejects(
    startSwitchyard({ files: { 'confused.mjs': `export default { kind: 'middleware', create() { return { pick: (c) => c[0] }; } };` }, toml }),
    (err: Error & { issues?: { line: number; keyPath: string; message: string }[] }) => {
      assert.equal(err.issues?.[0]?.line, 7, String(err));
      assert.equal(err.issues[0]!.keyPath, 'pipeline[0].plugin');
      assert.match(err.issues[0]!.message, /create\(\) must return an object with a handle\(ctx, next\) function/);
      return true;
    },
  );
});
