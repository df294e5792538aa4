/**
 * tcp: an active health check that opens a TCP connection to each backend
 * and closes it again; healthy when the connection is accepted in time.
 *
 * ```toml
 * [pools.api]
 * health = { checker = "tcp", interval = "2s", timeout = "500ms" }
 * ```
 *
 * For backends that speak something other than HTTP on their port, or whose
 * HTTP health endpoint is not worth a request. It cannot see a backend that
 * accepts connections but answers 500: use `http` for that.
 */
import net from 'node:net';
import { definePlugin, type HealthDefinition, type HealthResult, type HealthTarget } from '../src/index.js';

/** Connects to `target` and resolves once the connection is accepted; rejects with the socket error. */
export function connectProbe(target: HealthTarget, signal: AbortSignal): Promise<HealthResult> {
  return new Promise<HealthResult>((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const socket = net.connect({ host: target.hostname, port: target.port });
    const onAbort = (): void => {
      socket.destroy();
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve({ healthy: true, reason: 'connection accepted' });
    });
    socket.once('error', (err) => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      reject(err);
    });
  });
}

export default definePlugin({
  name: 'tcp',
  kind: 'health',
  description: 'Opens a TCP connection to each backend; healthy when it is accepted within the timeout.',
  schema: { type: 'object', additionalProperties: false, properties: {} },
  create() {
    return { check: connectProbe };
  },
}) satisfies HealthDefinition;
