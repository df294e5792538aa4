/**
 * Plugins that hang while starting or stopping cannot stall reloads or
 * retirement: create() and close() are bounded (short deadlines here).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfigFile } from '../../src/config/load.js';
import { BackendRegistry } from '../../src/pool/backend-registry.js';
import { createForwarder } from '../../src/proxy/forward.js';
import { Generation, PluginStartError, type GenerationDeps } from '../../src/server/generation.js';

const events = ((globalThis as { __lbDeadlineEvents?: string[] }).__lbDeadlineEvents ??= []);

const PLUGINS = {
  'slow-start.mjs': `
    const events = globalThis.__lbDeadlineEvents;
    export default { kind: 'middleware', create(config) {
      return new Promise((resolve) => setTimeout(() => {
        events.push('slow-start created');
        resolve({ handle: (ctx, next) => next(), close() { events.push('slow-start closed'); } });
      }, config.ms ?? 0));
    } };`,
  'stuck-close.mjs': `
    const events = globalThis.__lbDeadlineEvents;
    export default { kind: 'middleware', create() {
      return { handle: (ctx, next) => next(), close() { events.push('stuck-close closing'); return new Promise(() => {}); } };
    } };`,
  'ok.mjs': `
    const events = globalThis.__lbDeadlineEvents;
    export default { kind: 'middleware', create() {
      return { handle: (ctx, next) => next(), close() { events.push('ok closed'); } };
    } };`,
};

async function configWith(t: { after(fn: () => Promise<void>): void }, pipeline: string[]) {
  const dir = await mkdtemp(join(tmpdir(), 'lb-deadlines-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  for (const [name, source] of Object.entries(PLUGINS)) await writeFile(join(dir, name), source);
  const file = join(dir, 'lb.toml');
  await writeFile(
    file,
    `[pools.web]\nbackends = [{ url = "http://127.0.0.1:1" }]\n${pipeline.map((p) => `\n[[pipeline]]\n${p}\n`).join('')}`,
  );
  return loadConfigFile(file);
}

function deps(): GenerationDeps & { logs: { msg: string }[] } {
  const logs: { msg: string }[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
  return {
    logs,
    registry: new BackendRegistry(),
    logger: logger as unknown as GenerationDeps['logger'],
    forward: createForwarder(() => {}),
    pluginDeadlines: { createMs: 100, closeMs: 100 },
  };
}

test('a create() past its deadline fails the build; the late instance is closed when it arrives', async (t) => {
  events.length = 0;
  const config = await configWith(t, ['plugin = "./ok.mjs"', 'plugin = "./slow-start.mjs"\nms = 300']);
  const d = deps();
  const started = Date.now();
  await assert.rejects(Generation.build(1, config, d), (err: unknown) => {
    assert.ok(err instanceof PluginStartError);
    assert.equal(err.keyPath, 'pipeline[1].plugin');
    assert.match(err.message, /plugin "\.\/slow-start\.mjs" failed to start: create\(\) did not finish within 100ms/);
    return true;
  });
  assert.ok(Date.now() - started < 290, 'did not wait for the slow create()');
  assert.deepEqual(events, ['ok closed']);
  const deadline = Date.now() + 2000;
  while (!events.includes('slow-start closed') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(events, ['ok closed', 'slow-start created', 'slow-start closed']);
});

test('a close() that never settles is logged and not waited for', async (t) => {
  events.length = 0;
  const config = await configWith(t, ['plugin = "./stuck-close.mjs"', 'plugin = "./ok.mjs"']);
  const d = deps();
  const generation = await Generation.build(1, config, d);
  const started = Date.now();
  await generation.retire();
  assert.ok(Date.now() - started < 1000);
  assert.equal(generation.closed, true);
  assert.deepEqual(events, ['stuck-close closing', 'ok closed'], 'the next plugin is still closed');
  assert.ok(d.logs.some((l) => l.msg === 'plugin "./stuck-close.mjs" at pipeline[0]: close() did not finish within 100ms; not waiting for it'));
});
