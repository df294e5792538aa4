/** Checks every plugin schema must pass: `lb schema` and the docs are generated from it. */
import assert from 'node:assert/strict';

/** Every object schema closed (additionalProperties: false), every property described. */
export function assertDescribed(node: unknown, path = ''): void {
  if (node === null || typeof node !== 'object') return;
  const s = node as Record<string, unknown>;
  if (s.properties) {
    assert.equal(s.additionalProperties, false, `${path} must set additionalProperties: false`);
    for (const [key, sub] of Object.entries(s.properties as Record<string, Record<string, unknown>>)) {
      assert.equal(typeof sub.description, 'string', `${path}.${key} has no description`);
      assertDescribed(sub, `${path}.${key}`);
    }
  }
}
