/**
 * The schema `lb schema` prints: the core schema with every built-in
 * plugin's own schema folded in (selected by its `plugin`/`checker` name), so
 * an editor can complete and check a whole lb.toml — standard JSON Schema
 * only, without the loader's own keywords, so strict validators accept it.
 */
import { builtinDefinitions } from '../plugin/registry.js';
import type { JsonSchema, PluginDefinition, PluginKind } from '../plugin/types.js';
import { coreSchema, pluginTableSchema } from './schema.js';
import { CONFIG_KEYWORDS } from './keywords.js';

type Schema = Record<string, any>;

function branches(defs: Map<string, PluginDefinition>, kind: PluginKind, nameKey: string): Schema[] {
  const out: Schema[] = [];
  for (const [name, def] of defs) {
    if (def.kind !== kind) continue;
    // A copy: the printed schema drops keywords the plugin's own validation needs.
    const own = structuredClone(def.schema ?? {}) as Schema;
    out.push({
      if: { properties: { [nameKey]: { const: name } }, required: [nameKey] },
      then: {
        ...(def.description ? { description: def.description } : {}),
        properties: { [nameKey]: true, ...(own.properties ?? {}) },
        ...(own.required ? { required: own.required } : {}),
      },
    });
  }
  return out;
}

export async function fullSchema(): Promise<JsonSchema> {
  const defs = await builtinDefinitions();
  const schema = structuredClone(coreSchema) as Schema;
  const props = schema.properties;
  const middleware = { ...pluginTableSchema, allOf: branches(defs, 'middleware', 'plugin') };
  props.pipeline.items = middleware;
  const route = props.routes.items;
  route.properties.pipeline.items = middleware;
  const pool = props.pools.additionalProperties;
  const strategies = [...defs].filter(([, d]) => d.kind === 'strategy').map(([name]) => name);
  pool.properties.strategy = {
    ...pool.properties.strategy,
    anyOf: [
      { type: 'string', enum: strategies, description: 'A built-in strategy.' },
      // Third-party strategies are paths or package names: any string is allowed, the enum is for completion.
      { type: 'string', description: 'A third-party strategy: a path relative to lb.toml, or an npm package name.' },
      { ...pluginTableSchema, allOf: branches(defs, 'strategy', 'plugin') },
    ],
  };
  pool.properties.health.allOf = branches(defs, 'health', 'checker');
  removeConfigKeywords(schema);
  return schema;
}

/** Drops the loader's own keywords from `node` and everything below it (see keywords.ts). */
function removeConfigKeywords(node: unknown): void {
  if (node === null || typeof node !== 'object') return;
  if (Array.isArray(node)) {
    for (const item of node) removeConfigKeywords(item);
    return;
  }
  const schema = node as Schema;
  for (const keyword of CONFIG_KEYWORDS) delete schema[keyword];
  for (const value of Object.values(schema)) removeConfigKeywords(value);
}
