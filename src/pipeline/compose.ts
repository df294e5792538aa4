/**
 * The onion: middleware[0] wraps middleware[1] … wraps the terminal step
 * (select a backend and forward). Composed once per route per configuration
 * generation. Unlike koa-compose, a layer may call `next()` again — that is
 * how a retry plugin retries — and each call runs the layers inside it anew.
 */
import { LbError } from '../errors.js';
import type { MiddlewareInstance, Next, RequestContext } from '../plugin/types.js';

export type Handler<C extends RequestContext> = (ctx: C) => Promise<void>;

export interface NamedMiddleware {
  readonly name: string;
  readonly instance: MiddlewareInstance;
}

export function compose<C extends RequestContext>(layers: readonly NamedMiddleware[], terminal: Handler<C>): Handler<C> {
  let handler: Handler<C> = terminal;
  for (let i = layers.length - 1; i >= 0; i--) handler = wrap(layers[i]!, handler);
  return handler;
}

function wrap<C extends RequestContext>(layer: NamedMiddleware, inner: Handler<C>): Handler<C> {
  const { instance, name } = layer;
  // Built once per layer, so a request allocates only its `next`.
  const failed = (err: unknown): never => {
    throw pluginFailure(name, err);
  };
  return (ctx) => {
    let innerResult: Promise<void> | undefined;
    const next: Next = () => (innerResult = inner(ctx));
    let result: Promise<void>;
    try {
      result = instance.handle(ctx, next);
    } catch (err) {
      return Promise.reject(pluginFailure(name, err));
    }
    // The layer handed back what next() returned (a `return next()` layer):
    // nothing of its own can reject that promise, and the inner layers named
    // their own failures. Passing it on saves a promise and a microtask hop.
    return result === innerResult ? result : result.catch(failed);
  };
}

/**
 * Errors a plugin lets through from inner layers (LbError) pass unchanged;
 * anything else the plugin threw becomes a 500 that names it.
 */
function pluginFailure(name: string, err: unknown): LbError {
  if (err instanceof LbError) return err;
  return new LbError('LB_ERR_PLUGIN', `plugin "${name}" failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}
