/**
 * Switchyard's public API for plugin authors. Built-in plugins import only
 * from here, exactly as third-party plugins do.
 *
 * @example
 * ```ts
 * import { definePlugin } from 'switchyard';
 * export default definePlugin({
 *   name: 'request-id', kind: 'middleware',
 *   schema: { type: 'object', properties: { header: { type: 'string', default: 'x-request-id' } } },
 *   create(config) {
 *     return { async handle(ctx, next) { ctx.headers[config.header] ??= crypto.randomUUID(); await next(); } };
 *   },
 * });
 * ```
 */
import type { PluginDefinition } from './plugin/types.js';

export type * from './plugin/types.js';
export { LbError, ERRORS, isConnectFailure, type ErrorCode } from './errors.js';
export { parseDuration, parseSize, durationSchema, sizeSchema } from './units.js';

/** Identity function that gives a plugin definition its types. */
export function definePlugin<const D extends PluginDefinition>(definition: D): D {
  return definition;
}
