/**
 * Smooth weighted round robin, as nginx does it: weights 5:1:1 give
 * a a b a c a a, spreading the light backends through the cycle instead of
 * sending five requests in a row to the heavy one.
 */
import { definePlugin, PerBackendState, type Candidate, type StrategyDefinition, type StrategyInstance } from '../src/index.js';

/** A backend's running "current weight". */
export interface SmoothWeight {
  current: number;
  /**
   * The weight `current` was built up with. Current weights range over about
   * the total weight; after a reload that shrinks weights (1000:1000 → 1:1)
   * the old values would take hundreds of picks to wear off, all going to
   * the backend that happened to lead. So a changed weight starts a new
   * cycle for everyone, as a reload does in nginx.
   */
  weight: number;
}

/**
 * One step of smooth weighted round robin over `candidates`; updates `state`
 * (keyed by backend URL, so it survives candidate objects being recreated).
 *
 * Every candidate's current weight grows by its weight; the largest wins
 * (the first in config order on a tie) and gives back the total weight.
 * A backend that is out of rotation keeps its current weight frozen and
 * resumes with it when it returns, as nginx does; one that was never seen
 * starts at 0. A candidate whose weight changed (a reload) restarts the
 * cycle: every current weight goes back to 0. A step leaves the sum of all
 * current weights, frozen ones included, at 0, so the values stay bounded
 * however often backends come and go, and each candidate set still gets
 * exact proportions per cycle.
 */
export function pickSmoothWeighted(
  candidates: readonly Candidate[],
  state: Map<string, SmoothWeight>,
): Candidate | undefined {
  const n = candidates.length;
  if (n === 0) return undefined;
  let total = 0;
  let best: Candidate | undefined;
  let bestSlot: SmoothWeight | undefined;
  for (let i = 0; i < n; i++) {
    const c = candidates[i]!;
    let slot = state.get(c.url);
    if (slot === undefined) {
      slot = { current: 0, weight: c.weight };
      state.set(c.url, slot);
    } else if (slot.weight !== c.weight) {
      restartCycle(candidates, state);
      return pickSmoothWeighted(candidates, state);
    }
    slot.current += c.weight;
    total += c.weight;
    if (bestSlot === undefined || slot.current > bestSlot.current) {
      best = c;
      bestSlot = slot;
    }
  }
  bestSlot!.current -= total;
  return best;
}

/** Every current weight back to 0 and the candidates' weights recorded: the next pick starts a fresh cycle. */
function restartCycle(candidates: readonly Candidate[], state: Map<string, SmoothWeight>): void {
  for (const slot of state.values()) slot.current = 0;
  for (let i = 0; i < candidates.length; i++) {
    const c = candidates[i]!;
    const slot = state.get(c.url);
    if (slot === undefined) state.set(c.url, { current: 0, weight: c.weight });
    else slot.weight = c.weight;
  }
}

/**
 * The cycle's current weights, shared by the instances of one reload chain
 * (handOver). A backend the configuration no longer lists loses its slot
 * (PerBackendState), and takes its current weight with it: the rest would no
 * longer sum to 0, which is what keeps them bounded, so the cycle starts
 * afresh, as after a reload that changes weights.
 */
class SmoothWeights extends PerBackendState<SmoothWeight> {
  override release(instance: object): string[] {
    const dropped = super.release(instance);
    if (dropped.length > 0) for (const slot of this.byUrl.values()) slot.current = 0;
    return dropped;
  }
}

export default definePlugin({
  name: 'weighted-round-robin',
  kind: 'strategy',
  description: 'Smooth weighted round robin (nginx): each backend gets its weight share, interleaved rather than in bursts.',
  schema: { type: 'object', additionalProperties: false, properties: {} },
  create(_config: Record<string, never>, api) {
    // Keyed by URL, so on reload backends that stay keep their place in the cycle.
    const shared = api.inherited instanceof SmoothWeights ? api.inherited : new SmoothWeights();
    const state = shared.byUrl;
    const instance: StrategyInstance = {
      pick: (candidates) => pickSmoothWeighted(candidates, state),
      handOver: () => shared,
      close: () => {
        shared.release(instance);
      },
    };
    shared.use(instance, api);
    return instance;
  },
}) satisfies StrategyDefinition;
