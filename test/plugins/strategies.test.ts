/**
 * The contract every strategy plugin keeps, checked across all of them:
 * a schema ajv compiles strictly, with a description on every property,
 * defaults that make `{}` a valid config, and undefined for no candidates.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { Candidate, PluginApi, RequestContext, StrategyDefinition } from '../../src/index.js';
import roundRobin from '../../plugins/round-robin.js';
import weightedRoundRobin from '../../plugins/weighted-round-robin.js';
import leastConnections from '../../plugins/least-connections.js';
import ipHash from '../../plugins/ip-hash.js';
import consistentHash from '../../plugins/consistent-hash.js';
import p2c from '../../plugins/p2c.js';

const strategies: StrategyDefinition[] = [roundRobin, weightedRoundRobin, leastConnections, ipHash, consistentHash, p2c];
const ctx = { clientIp: '10.0.0.1', headers: { cookie: 'session=x' } } as unknown as RequestContext;

function configFor(definition: StrategyDefinition): Record<string, unknown> {
  const config = {};
  const ajv = new Ajv2020({ strict: true, useDefaults: true });
  assert.ok(ajv.validate(definition.schema!, config), ajv.errorsText());
  return config;
}

for (const definition of strategies) {
  test(`${definition.name}: schema is strict, described, and fills its defaults`, () => {
    assert.equal(definition.kind, 'strategy');
    assert.ok(definition.description);
    const schema = definition.schema as { type: string; additionalProperties: boolean; properties: Record<string, Record<string, unknown>> };
    assert.equal(schema.type, 'object');
    assert.equal(schema.additionalProperties, false);
    for (const [key, property] of Object.entries(schema.properties)) {
      assert.equal(typeof property.description, 'string', `${key} has no description`);
      assert.ok('default' in property, `${key} has no default`);
    }
    const ajv = new Ajv2020({ strict: true, useDefaults: true });
    assert.equal(ajv.validate(schema, { nonsense: 1 }), false, 'unknown keys are rejected');
  });

  test(`${definition.name}: no candidates → undefined; one candidate → it`, async () => {
    const instance = await definition.create(configFor(definition), { pluginName: definition.name } as PluginApi);
    assert.equal(instance.pick([], ctx), undefined);
    const only: Candidate = { url: 'http://127.0.0.1:8001', weight: 2, activeConnections: 3, healthy: true };
    for (let i = 0; i < 3; i++) assert.equal(instance.pick([only], ctx), only);
  });
}

test('consistent-hash: key must be client-ip, header:NAME or cookie:NAME', async (t) => {
  const ajv = new Ajv2020({ strict: true, useDefaults: true });
  const validate = ajv.compile(consistentHash.schema);
  const cases = [
    { key: 'client-ip', ok: true },
    { key: 'header:X-User', ok: true },
    { key: 'cookie:session_id', ok: true },
    { key: 'header:', ok: false },
    { key: 'cookie:a b', ok: false },
    { key: 'ip', ok: false },
    { key: 'header:X User', ok: false },
  ];
  for (const { key, ok } of cases) {
    await t.test(key, () => assert.equal(validate({ key }), ok));
  }
  const config: Record<string, unknown> = {};
  validate(config);
  assert.deepEqual(config, { key: 'client-ip', replicas: 160 });
  assert.equal(validate({ replicas: 0 }), false);
});
