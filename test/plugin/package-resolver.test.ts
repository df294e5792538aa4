/**
 * Plugins named by npm package resolve as `import` would from lb.toml's
 * folder — including ESM-only packages that export only under `import`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveExports, resolvePackage, splitSpecifier, PackageNotFoundError } from '../../src/plugin/package-resolver.js';
import { startSwitchyard } from '../../src/testing.js';
import { startBackends } from '../helpers/backends.js';
import { countBodies } from '../helpers/http-client.js';
import { runLb } from '../helpers/lb-process.js';

test('splitSpecifier', () => {
  assert.deepEqual(splitSpecifier('pkg'), { name: 'pkg', subpath: '.' });
  assert.deepEqual(splitSpecifier('pkg/a/b'), { name: 'pkg', subpath: './a/b' });
  assert.deepEqual(splitSpecifier('@s/pkg'), { name: '@s/pkg', subpath: '.' });
  assert.deepEqual(splitSpecifier('@s/pkg/x'), { name: '@s/pkg', subpath: './x' });
});

test('resolveExports under the import / node / default conditions', () => {
  const rows: { desc: string; exports: unknown; subpath: string; expect: string | null }[] = [
    { desc: 'string', exports: './i.js', subpath: '.', expect: './i.js' },
    { desc: 'import only', exports: { '.': { import: './i.mjs' } }, subpath: '.', expect: './i.mjs' },
    { desc: 'require only', exports: { '.': { require: './i.cjs' } }, subpath: '.', expect: null },
    { desc: 'key order decides', exports: { types: './i.d.ts', default: './d.js', import: './i.mjs' }, subpath: '.', expect: './d.js' },
    { desc: 'nested', exports: { '.': { node: { import: './n.mjs', require: './n.cjs' } } }, subpath: '.', expect: './n.mjs' },
    { desc: 'array fallback', exports: { '.': [{ worker: './w.js' }, './f.js'] }, subpath: '.', expect: './f.js' },
    { desc: 'subpath', exports: { '.': './i.js', './strategy': { import: './s.mjs' } }, subpath: './strategy', expect: './s.mjs' },
    { desc: 'pattern', exports: { './plugins/*': './dist/*.js' }, subpath: './plugins/a', expect: './dist/a.js' },
    { desc: 'not exported', exports: { '.': './i.js' }, subpath: './x', expect: null },
  ];
  for (const { desc, exports, subpath, expect } of rows) assert.equal(resolveExports(exports, subpath), expect, desc);
});

async function packageFolder(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'lb-pkg-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const esm = join(dir, 'node_modules', 'acme-last');
  await mkdir(esm, { recursive: true });
  await writeFile(join(esm, 'package.json'), JSON.stringify({ name: 'acme-last', type: 'module', exports: { '.': { import: './index.mjs' } } }));
  await writeFile(join(esm, 'index.mjs'), `export default { kind: 'strategy', create() { return { pick: (c) => c.at(-1) }; } };\n`);
  const legacy = join(dir, 'node_modules', '@acme', 'first');
  await mkdir(legacy, { recursive: true });
  await writeFile(join(legacy, 'package.json'), JSON.stringify({ name: '@acme/first', type: 'module', main: 'lib/main' }));
  await mkdir(join(legacy, 'lib'));
  await writeFile(join(legacy, 'lib', 'main.js'), `export default { kind: 'strategy', create() { return { pick: (c) => c[0] }; } };\n`);
  return dir;
}

test('resolvePackage finds ESM-only and main-only packages from a folder below node_modules', async (t) => {
  const dir = await packageFolder(t);
  const below = join(dir, 'conf', 'd');
  await mkdir(below, { recursive: true });
  assert.equal(resolvePackage('acme-last', below), join(dir, 'node_modules', 'acme-last', 'index.mjs'));
  assert.equal(resolvePackage('@acme/first', below), join(dir, 'node_modules', '@acme', 'first', 'lib', 'main.js'));
  assert.throws(() => resolvePackage('acme-missing', below), PackageNotFoundError);
  assert.throws(() => resolvePackage('acme-last/other', below), /exports nothing for "\.\/other"/);
});

test('a strategy from an ESM-only npm package picks backends, and lb validate accepts it', async (t) => {
  const dir = await packageFolder(t);
  const backends = await startBackends(3);
  const list = backends.map((b) => `{ url = "${b.url}" }`).join(', ');
  const toml = `[server]\nlisten = "127.0.0.1:0"\n[pools.web]\nstrategy = "acme-last"\nbackends = [${list}]\n`;
  const sy = await startSwitchyard({ dir, toml });
  t.after(async () => {
    await sy.close();
    await Promise.all(backends.map((b) => b.close()));
  });
  assert.deepEqual(await countBodies(sy.url, 10), { b3: 10 });
  await sy.reload(toml.replace('"acme-last"', '"@acme/first"'));
  assert.deepEqual(await countBodies(sy.url, 10), { b1: 10 });

  const file = join(dir, 'lb.toml');
  await writeFile(file, toml);
  const { code, stderr } = await runLb(['validate', '-c', file]);
  assert.equal(code, 0, stderr);
});
