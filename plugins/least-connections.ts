/**
 * Least connections, weight-aware: the backend with the fewest requests in
 * flight per unit of weight.
 */
import { definePlugin, lessLoaded, type Candidate, type StrategyDefinition } from '../src/index.js';

/** Where the scan for the least loaded backend starts; see pickLeastConnections. */
export interface RotationCursor {
  next: number;
}

/**
 * The candidate with the least `activeConnections / weight` (see
 * `lessLoaded`: equal ratios tie exactly).
 *
 * The scan starts just after the backend picked last time and keeps the first
 * minimum it meets, so tied backends take turns; at low load (everyone at 0)
 * this is round robin rather than all traffic to the first backend.
 */
export function pickLeastConnections(candidates: readonly Candidate[], cursor: RotationCursor): Candidate | undefined {
  const n = candidates.length;
  if (n === 0) return undefined;
  const start = cursor.next % n;
  let bestIndex = start;
  let best = candidates[start]!;
  for (let k = 1; k < n; k++) {
    let i = start + k;
    if (i >= n) i -= n;
    const c = candidates[i]!;
    if (lessLoaded(c, best)) {
      best = c;
      bestIndex = i;
    }
  }
  cursor.next = bestIndex + 1;
  return best;
}

export default definePlugin({
  name: 'least-connections',
  kind: 'strategy',
  description: 'Sends each request to the backend with the fewest requests in flight per unit of weight; ties take turns.',
  schema: { type: 'object', additionalProperties: false, properties: {} },
  create(_config: Record<string, never>) {
    const cursor: RotationCursor = { next: 0 };
    return { pick: (candidates) => pickLeastConnections(candidates, cursor) };
  },
}) satisfies StrategyDefinition;
