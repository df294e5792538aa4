/**
 * weighted-random: picks a backend at random, in proportion to its weight.
 * A third-party strategy plugin, importing only the published package. The
 * algorithm is a pure function (tested on its own); the plugin is the glue.
 *
 * `seed` makes the sequence reproducible (tests, demos); without it
 * Math.random is used.
 */
import { definePlugin, type Candidate, type StrategyDefinition } from 'switchyard';

export interface WeightedRandomConfig {
  readonly seed?: number;
}

/** A random number in [0, 1). */
export type RandomSource = () => number;

/**
 * The candidate `random()` lands on when each takes a share of [0, total
 * weight) as wide as its weight. Undefined only for an empty list.
 */
export function pickWeightedRandom(candidates: readonly Candidate[], random: RandomSource): Candidate | undefined {
  const n = candidates.length;
  if (n <= 1) return candidates[0];
  let total = 0;
  for (let i = 0; i < n; i++) total += candidates[i]!.weight;
  let point = random() * total;
  for (let i = 0; i < n; i++) {
    point -= candidates[i]!.weight;
    if (point < 0) return candidates[i];
  }
  return candidates[n - 1]; // only reached through floating-point rounding
}

/** mulberry32: a tiny seeded generator, good enough to spread load reproducibly. */
export function seededRandom(seed: number): RandomSource {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export default definePlugin({
  name: 'weighted-random',
  kind: 'strategy',
  description: 'Picks a healthy backend at random, in proportion to its weight.',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      seed: { type: 'integer', minimum: 0, description: 'Seed for a reproducible sequence; leave out for Math.random.' },
    },
  },
  create(config: WeightedRandomConfig) {
    const random = config.seed === undefined ? Math.random : seededRandom(config.seed);
    return {
      pick: (candidates: readonly Candidate[]) => pickWeightedRandom(candidates, random),
    };
  },
}) satisfies StrategyDefinition<WeightedRandomConfig>;
