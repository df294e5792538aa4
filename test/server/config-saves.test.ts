import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigSaves, readConfigSave } from '../../src/server/config-saves.js';

test('config saves: empty and unchanged files are no reload; a refused save reported twice is let go; saving it again retries it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-saves-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'lb.toml');
  const saves = new ConfigSaves();

  await writeFile(file, '');
  assert.match(saves.whyNotReload(await readConfigSave(file), 'serving') ?? '', /empty/);

  await writeFile(file, 'a = 1\n');
  const serving = (await readConfigSave(file)).hash;
  assert.match(saves.whyNotReload(await readConfigSave(file), serving) ?? '', /without changes/);

  await writeFile(file, 'a = 2\n');
  await utimes(file, 1000, 1000);
  const bad = await readConfigSave(file);
  assert.equal(saves.whyNotReload(bad, serving), undefined, 'a changed file is a reload');
  saves.decided(bad, false);
  assert.match(saves.whyNotReload(await readConfigSave(file), serving) ?? '', /refused/, 'the same save, reported again');

  await utimes(file, 2000, 2000);
  assert.equal(saves.whyNotReload(await readConfigSave(file), serving), undefined, 'saved again: retried');
  saves.decided(await readConfigSave(file), true);
  await utimes(file, 1000, 1000);
  assert.equal(saves.whyNotReload(await readConfigSave(file), serving), undefined, 'an applied save leaves nothing refused');
});
