/**
 * Power of two choices: sample two distinct backends at random and send the
 * request to the less loaded one. Nearly as good as least-connections, and
 * it does not herd every balancer instance onto the same idle backend.
 */
import { definePlugin, lessLoaded, type Candidate, type StrategyDefinition } from '../src/index.js';

/**
 * Of two distinct candidates drawn with `random` (uniform in [0, 1), called
 * twice), the one with fewer `activeConnections` per unit of weight; the first
 * drawn on a tie. One candidate is returned as is, without drawing.
 */
export function pickTwoChoices(candidates: readonly Candidate[], random: () => number): Candidate | undefined {
  const n = candidates.length;
  if (n <= 1) return candidates[0];
  const i = Math.floor(random() * n);
  // Draw the second from the other n - 1, so the two are always distinct.
  let j = Math.floor(random() * (n - 1));
  if (j >= i) j++;
  const a = candidates[i]!;
  const b = candidates[j]!;
  return lessLoaded(b, a) ? b : a;
}

export default definePlugin({
  name: 'p2c',
  kind: 'strategy',
  description: 'Power of two choices: of two backends drawn at random, the one with fewer requests in flight per unit of weight.',
  schema: { type: 'object', additionalProperties: false, properties: {} },
  create(_config: Record<string, never>) {
    return { pick: (candidates) => pickTwoChoices(candidates, Math.random) };
  },
}) satisfies StrategyDefinition;
