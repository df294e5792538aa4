/**
 * `lb run` reloads lb.toml when it is saved — in place, via temp file +
 * rename, via `sed -i` — and on SIGHUP; a save that cannot be applied
 * (broken TOML, a plugin whose create() throws, a plugin module that fails
 * to import) is logged at file:line:col and changes nothing. Real CLI child
 * process, real backends.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startBackend, type TestBackend } from '../helpers/backends.js';
import { request } from '../helpers/http-client.js';
import { startLb, type LbProcess, type LogLine } from '../helpers/lb-process.js';

const LIVE = /^configuration generation (\d+) is live/;
const NOT_APPLIED = /^configuration not applied/;

function poolToml(backends: readonly TestBackend[], extra = ''): string {
  return `[server]
listen = "127.0.0.1:0"

[pools.web]
strategy = "round-robin"
backends = [${backends.map((b) => `{ url = "${b.url}" }`).join(', ')}]
${extra}`;
}

interface Fixture {
  dir: string;
  file: string;
  a: TestBackend[];
  b: TestBackend[];
  lb: LbProcess;
}

/** Writes the first configuration (`toml`) into `dir`; returns the path `lb run -c` is given. */
type Layout = (dir: string, toml: string) => Promise<string>;

async function plainFile(dir: string, toml: string): Promise<string> {
  const file = join(dir, 'lb.toml');
  await writeFile(file, toml);
  return file;
}

async function setUp(t: { after(fn: () => Promise<void>): void }, args: string[] = [], layout: Layout = plainFile): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'lb-reload-'));
  const a = [await startBackend('a1'), await startBackend('a2')];
  const b = [await startBackend('b1'), await startBackend('b2')];
  let lb: LbProcess | undefined;
  t.after(async () => {
    await lb?.stop();
    await Promise.all([...a, ...b].map((x) => x.close()));
    await rm(dir, { recursive: true, force: true });
  });
  const file = await layout(dir, poolToml(a));
  lb = await startLb(file, args);
  return { dir, file, a, b, lb };
}

/** Polls until `count` requests in a row are answered by `names`; returns the ms it took. */
async function untilServedBy(url: string, names: readonly string[], deadlineMs: number, count = 10): Promise<number> {
  const started = Date.now();
  let streak = 0;
  const seen: string[] = [];
  while (Date.now() - started < deadlineMs) {
    const res = await request(url);
    assert.equal(res.status, 200, `a request failed during the reload: ${res.status} ${res.body}`);
    seen.push(res.body);
    streak = names.includes(res.body) ? streak + 1 : 0;
    if (streak >= count) return Date.now() - started;
  }
  assert.fail(`not served only by ${names.join(', ')} within ${deadlineMs}ms; last answers: ${seen.slice(-12).join(' ')}`);
}

function liveLines(lb: LbProcess): LogLine[] {
  return lb.logs.filter((l) => LIVE.test(l.msg));
}

test('an in-place overwrite switching backends reaches traffic within 2 s, logged once with what changed', async (t) => {
  const { file, a, b, lb } = await setUp(t);
  await untilServedBy(lb.url, ['a1', 'a2'], 2000);
  const from = lb.logs.length;
  await writeFile(file, poolToml(b));
  const ms = await untilServedBy(lb.url, ['b1', 'b2'], 2000);
  const line = await lb.waitForLog((l) => LIVE.test(l.msg), 2000, from);
  assert.equal(line.generation, 2);
  assert.equal(line.trigger, 'file saved');
  assert.equal(typeof line.ms, 'number');
  const changes = line.changes as { backends: { added: string[]; removed: string[] }; pools: { changed: string[] } };
  assert.deepEqual(changes.backends.added.sort(), b.map((x) => `web ${x.url}`).sort());
  assert.deepEqual(changes.backends.removed.sort(), a.map((x) => `web ${x.url}`).sort());
  assert.deepEqual(changes.pools.changed, ['web']);
  assert.match(line.msg, /backends \+web http/);
  assert.equal(liveLines(lb).length, 1, 'one log line per reload');
  t.diagnostic(`in-place overwrite: new backends serving after ${ms}ms`);
});

test('write-temp-then-rename and `sed -i` saves both reload; an identical save does not', async (t) => {
  const { dir, file, a, b, lb } = await setUp(t);
  const tmp = join(dir, '.lb.toml.swp');
  await writeFile(tmp, poolToml(b));
  await rename(tmp, file);
  const ms = await untilServedBy(lb.url, ['b1', 'b2'], 2000);
  t.diagnostic(`rename: new backends serving after ${ms}ms`);

  // sed -i writes a temp file in the same folder and renames it over lb.toml.
  await promisify(execFile)('sed', ['-i', `s/${b[0]!.port}/${a[0]!.port}/; s/${b[1]!.port}/${a[1]!.port}/`, file]);
  const sedMs = await untilServedBy(lb.url, ['a1', 'a2'], 2000);
  t.diagnostic(`sed -i: new backends serving after ${sedMs}ms`);
  await lb.waitForLog((l) => LIVE.test(l.msg) && l.generation === 3, 2000);

  // Same bytes again: the hash matches the running config, nothing is rebuilt.
  await writeFile(file, poolToml(a));
  await new Promise((resolve) => setTimeout(resolve, 600)); // longer than the debounce; no event to await for "nothing happened"
  assert.equal(liveLines(lb).length, 2, 'an unchanged save is not a reload');
});

test('a Kubernetes ConfigMap update (the ..data symlink swapped, lb.toml untouched) reloads', async (t) => {
  // The kubelet's layout: lb.toml -> ..data/lb.toml, ..data -> a timestamped
  // folder; an update writes a new folder and renames a new ..data over the old.
  const { dir, b, lb } = await setUp(t, [], async (dir, toml) => {
    await mkdir(join(dir, '..2026_01'));
    await writeFile(join(dir, '..2026_01', 'lb.toml'), toml);
    await symlink('..2026_01', join(dir, '..data'));
    await symlink(join('..data', 'lb.toml'), join(dir, 'lb.toml'));
    return join(dir, 'lb.toml');
  });
  await untilServedBy(lb.url, ['a1', 'a2'], 2000);

  await mkdir(join(dir, '..2026_02'));
  await writeFile(join(dir, '..2026_02', 'lb.toml'), poolToml(b));
  await symlink('..2026_02', join(dir, '..data_tmp'));
  await rename(join(dir, '..data_tmp'), join(dir, '..data'));
  // The old folder is still there (the kubelet removes it a moment later): the swap alone is the save.
  const ms = await untilServedBy(lb.url, ['b1', 'b2'], 3000);
  t.diagnostic(`ConfigMap swap: new backends serving after ${ms}ms`);
  const line = await lb.waitForLog((l) => LIVE.test(l.msg), 2000);
  assert.equal(line.generation, 2);
  await rm(join(dir, '..2026_01'), { recursive: true });
});

test('lb.toml as a symlink to a sibling file: an atomic save of that file reloads', async (t) => {
  // lb.toml -> lb.production.toml, edited by an editor that writes a temp file and renames it over the target.
  const { dir, a, b, lb } = await setUp(t, [], async (dir, toml) => {
    await writeFile(join(dir, 'lb.production.toml'), toml);
    await symlink('lb.production.toml', join(dir, 'lb.toml'));
    return join(dir, 'lb.toml');
  });
  await untilServedBy(lb.url, ['a1', 'a2'], 2000);

  // Twice: the second save must be seen too, after the first replaced the file that was watched.
  for (const [generation, backends] of [[2, b], [3, a]] as const) {
    await writeFile(join(dir, '.lb.production.toml.swp'), poolToml(backends));
    await rename(join(dir, '.lb.production.toml.swp'), join(dir, 'lb.production.toml'));
    await untilServedBy(lb.url, backends.map((x) => x.name), 3000);
    const line = await lb.waitForLog((l) => LIVE.test(l.msg) && l.generation === generation, 2000);
    assert.equal(line.generation, generation);
  }
});

test('broken TOML: logged with file:line:col, old config keeps serving, the process lives; the fix applies', async (t) => {
  const { file, b, lb } = await setUp(t);
  const from = lb.logs.length;
  const broken = `${poolToml(b)}\n[pools.web.health\nchecker = "tcp"\n`;
  await writeFile(file, broken);
  const error = await lb.waitForLog((l) => NOT_APPLIED.test(l.msg), 5000, from);
  const brokenLine = broken.split('\n').indexOf('[pools.web.health') + 1;
  const problems = error.problems as string[];
  assert.equal(problems.length, 1);
  assert.match(problems[0]!, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:${brokenLine}:\\d+ TOML syntax error`));
  assert.ok(error.msg.includes(problems[0]!), 'the message carries the location too');
  assert.equal(error.generation, 1, 'the log says which generation keeps serving');
  for (let i = 0; i < 20; i++) {
    const res = await request(lb.url);
    assert.equal(res.status, 200);
    assert.match(res.body, /^a[12]$/, 'still the old backends');
  }
  assert.equal(lb.child.exitCode, null, 'still running');

  await writeFile(file, poolToml(b));
  await untilServedBy(lb.url, ['b1', 'b2'], 5000);
  assert.equal(liveLines(lb).length, 1);
});

test('a plugin whose create() throws, or whose module fails to import: logged at its table, nothing changes', async (t) => {
  const { dir, file, b, lb } = await setUp(t);
  await writeFile(
    join(dir, 'boom.mjs'),
    `export default { kind: 'middleware', create() { throw new Error('boom: REDIS_URL is not set'); } };\n`,
  );
  await writeFile(join(dir, 'broken.mjs'), `import 'switchyard-no-such-package';\nexport default {};\n`);
  const extra = (plugin: string) => `\n[[pipeline]]\nplugin = "${plugin}"\n`;

  for (const [plugin, pattern] of [
    ['./boom.mjs', /plugin "\.\/boom\.mjs" failed to start: boom: REDIS_URL is not set/],
    ['./broken.mjs', /plugin "\.\/broken\.mjs" failed to load: .*switchyard-no-such-package/],
  ] as const) {
    const from = lb.logs.length;
    const toml = poolToml(b, extra(plugin));
    await writeFile(file, toml);
    const error = await lb.waitForLog((l) => NOT_APPLIED.test(l.msg), 5000, from);
    const line = toml.split('\n').indexOf(`plugin = "${plugin}"`) + 1;
    const problems = error.problems as string[];
    assert.equal(problems.length, 1, JSON.stringify(problems));
    assert.ok(problems[0]!.startsWith(`${file}:${line}:`), `${problems[0]} should point at line ${line}`);
    assert.match(problems[0]!, pattern);
    for (let i = 0; i < 10; i++) {
      const { body } = await request(lb.url);
      // Once in many runs under load this saw 'b1': the process state and its log tell a
      // configuration applied despite the refusal (a 'live' line) from a dead lb whose port was reused.
      if (!/^a[12]$/.test(body)) {
        assert.fail(
          `answered by ${body}; lb exit code ${lb.child.exitCode}, signal ${lb.child.signalCode}; log:\n` +
            [...lb.logs.map((l) => JSON.stringify(l)), ...lb.text].join('\n'),
        );
      }
    }
  }
  assert.equal(liveLines(lb).length, 0);
  assert.equal(lb.child.exitCode, null);
});

test('SIGHUP reloads even an unchanged file; --no-watch ignores saves', async (t) => {
  const { file, b, lb } = await setUp(t, ['--no-watch']);
  await writeFile(file, poolToml(b));
  await new Promise((resolve) => setTimeout(resolve, 600)); // past the debounce: a watcher would have reloaded by now
  assert.match((await request(lb.url)).body, /^a[12]$/, 'not watching');
  lb.child.kill('SIGHUP');
  await untilServedBy(lb.url, ['b1', 'b2'], 2000);
  const first = await lb.waitForLog((l) => LIVE.test(l.msg), 2000);
  assert.equal(first.trigger, 'SIGHUP');
  lb.child.kill('SIGHUP');
  const second = await lb.waitForLog((l) => LIVE.test(l.msg) && l.generation === 3, 2000);
  assert.match(second.msg, /no effective change/);
});
