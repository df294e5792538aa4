/**
 * Switchyard's public API for plugin authors: `definePlugin`, the types of
 * every hook and what it receives, errors with stable codes, and the
 * duration/size helpers the core's own schemas use. Built-in plugins import
 * only from here, exactly as third-party plugins do. Tests import
 * `switchyard/testing`. The guide is PLUGINS.md.
 *
 * @example
 * ```ts
 * import { definePlugin } from 'switchyard';
 * export default definePlugin({
 *   name: 'request-id', kind: 'middleware',
 *   schema: { type: 'object', properties: { header: { type: 'string', default: 'x-request-id' } } },
 *   create(config: { header: string }) {
 *     return { async handle(ctx, next) { ctx.headers[config.header] ??= crypto.randomUUID(); await next(); } };
 *   },
 * });
 * ```
 *
 * @packageDocumentation
 */
import type { PluginDefinition } from './plugin/types.js';

export type * from './plugin/types.js';
export { LbError, ERRORS, isConnectFailure, acceptsOnlyJson, errorJson, type ErrorCode } from './errors.js';
export { parseDuration, parseSize, durationSchema, sizeSchema, MAX_TIMER_DURATION, TIMER_BOUNDS, type DurationBounds } from './units.js';
export { readCookie } from './plugin/cookie.js';
export { fnv1a32, mix32, hashString } from './plugin/hash.js';
export { lessLoaded } from './plugin/load.js';
export { PerBackendState } from './plugin/per-backend-state.js';
export { RepeatedWarnings } from './server/repeated-warnings.js';

/**
 * Declares a plugin: returns `definition` unchanged, typed. The `kind`
 * decides which hook `create()` must return (`handle` for 'middleware',
 * `pick` for 'strategy', `check` for 'health'), and the compiler checks it;
 * annotate `create`'s `config` parameter with the type your `schema`
 * describes. Make it the module's default export. Add
 * `satisfies MiddlewareDefinition<MyConfig>` (or Strategy…, Health…) for
 * the strictest check.
 */
export function definePlugin<const D extends PluginDefinition>(definition: D): D {
  return definition;
}
