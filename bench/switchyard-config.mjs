// The lb.toml every benchmark gives Switchyard, shared by run.mjs (wall clock)
// and instructions.mjs (instruction counts) so that both measure the same thing.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const ROOT = new URL('..', import.meta.url).pathname;

/** Each plugin as the benchmarks configure it: doing its work on every request, never refusing one. */
const PLUGINS = {
  headers: `plugin = "headers"\nrequest.set = { "X-Bench" = "1" }\nresponse.set = { "X-Served-By" = "switchyard" }`,
  retry: `plugin = "retry"`,
  'rate-limit': `plugin = "rate-limit"\nrate = 1000000000\nburst = 1000000000`,
  'sticky-session': `plugin = "sticky-session"`,
  'circuit-breaker': `plugin = "circuit-breaker"`,
  // A third-party layer that only calls next(): what one pipeline layer costs by itself.
  noop: `plugin = "./noop-plugin.mjs"`,
};

/** Written next to the generated lb.toml as noop-plugin.mjs. */
export const NOOP_PLUGIN = `export default {
  name: 'noop',
  kind: 'middleware',
  schema: { type: 'object', additionalProperties: false, properties: {} },
  create() {
    return { handle: (ctx, next) => next() };
  },
};
`;

/** `workers` and `adminPort`, when given, add `server.workers` and an `[admin]` listener (bench/workers.mjs). */
export function switchyardToml(port, backendUrls, pipeline, { workers, adminPort } = {}) {
  return `[server]
listen = "127.0.0.1:${port}"
${workers === undefined ? '' : `workers = ${workers}\n`}${adminPort === undefined ? '' : `\n[admin]\nlisten = "127.0.0.1:${adminPort}"\n`}
[pools.web]
strategy = "round-robin"
backends = [
${backendUrls.map((u) => `  { url = "${u}" },`).join('\n')}
]
${pipeline.map((p) => `\n[[pipeline]]\n${PLUGINS[p]}\n`).join('')}`;
}

/** Built-in plugins this build has (an older build given with --alt may lack some). */
export const availablePlugins = ['headers', 'retry', 'rate-limit', 'sticky-session', 'circuit-breaker'].filter(
  (p) => existsSync(join(ROOT, 'plugins', `${p}.ts`)) && existsSync(join(ROOT, 'dist/plugins', `${p}.js`)),
);

/** The common real pipeline issue 7 sets the targets for: round-robin + headers + retry. */
export const MAIN_PIPELINE = ['headers', 'retry'].filter((p) => availablePlugins.includes(p));

/**
 * The node flags a bin/lb runs node with: LB_NODE_FLAGS when this harness
 * was given it, else the bin's own default (its `${LB_NODE_FLAGS-…}`
 * fallback: --max-semi-space-size=8 today; other builds compared with
 * --alt may have other flags or none).
 */
export function binFlags(bin) {
  if (process.env.LB_NODE_FLAGS !== undefined) return process.env.LB_NODE_FLAGS.split(/\s+/).filter(Boolean);
  const m = /\$\{LB_NODE_FLAGS-([^}]*)\}/.exec(readFileSync(bin, 'utf8'));
  return m ? m[1].split(/\s+/).filter(Boolean) : [];
}
