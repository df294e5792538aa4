/**
 * The example plugins are third-party plugins that happen to live in this
 * repository: the example config loads them by path and validates, and the
 * registry does not offer them as built-ins.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { builtinNames, loadPlugin, PluginLoadError } from '../../../src/plugin/registry.js';
import { runLb } from '../../helpers/lb-process.js';

const EXAMPLES = fileURLToPath(new URL('../../../../plugins/examples/', import.meta.url));

test('lb validate -c plugins/examples/lb.example.toml passes', async () => {
  const { code, stdout, stderr } = await runLb(['validate', '-c', `${EXAMPLES}lb.example.toml`]);
  assert.equal(code, 0, stderr);
  assert.match(stdout, /lb\.example\.toml: valid/);
});

test('the examples are not built-ins', async () => {
  const names = await builtinNames();
  assert.ok(names.includes('round-robin'), 'the listing works');
  for (const name of ['examples', 'request-id', 'weighted-random', 'json-health']) {
    assert.ok(!names.includes(name), `${name} listed as a built-in`);
  }
  await assert.rejects(loadPlugin('request-id', EXAMPLES, 'middleware'), PluginLoadError);
  await assert.rejects(loadPlugin('examples/request-id/index', EXAMPLES, 'middleware'), PluginLoadError);
});
