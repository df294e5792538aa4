/**
 * json-health: a health checker for backends that report their own state as
 * JSON (`GET /health` → `{ "status": "ok" }`). Healthy when the field has
 * the expected value; otherwise the reason names what the backend said.
 * A third-party health plugin, importing only the published package.
 */
import { definePlugin, type HealthDefinition, type HealthResult, type HealthTarget } from 'switchyard';

export interface JsonHealthConfig {
  readonly path: string;
  readonly field: string;
  readonly expect: string;
}

/** What a backend's JSON answer means, as a health result. */
export function judgeHealthBody(body: unknown, field: string, expect: string): HealthResult {
  const value = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[field] : undefined;
  if (value === expect) return { healthy: true, reason: `${field} is ${expect}` };
  return { healthy: false, reason: value === undefined ? `no "${field}" in the answer` : `${field} is ${JSON.stringify(value)}` };
}

export default definePlugin({
  name: 'json-health',
  kind: 'health',
  description: 'GETs a JSON status document and checks one field of it.',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      path: { type: 'string', default: '/health', pattern: '^/', description: 'Path of the status document.' },
      field: { type: 'string', default: 'status', description: 'Top-level field to read.' },
      expect: { type: 'string', default: 'ok', description: 'Value that means healthy.' },
    },
  },
  create(config: JsonHealthConfig) {
    return {
      async check(target: HealthTarget, signal: AbortSignal): Promise<HealthResult> {
        // The signal aborts at the pool's health `timeout`; a throw is reported as the reason.
        const res = await fetch(`${target.url}${config.path}`, { signal, headers: { accept: 'application/json' } });
        if (res.status !== 200) {
          await res.body?.cancel();
          return { healthy: false, reason: `status ${res.status}` };
        }
        return judgeHealthBody(await res.json(), config.field, config.expect);
      },
    };
  },
}) satisfies HealthDefinition<JsonHealthConfig>;
