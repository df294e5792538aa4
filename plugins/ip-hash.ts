/**
 * IP hash: a client's address always leads to the same backend while that
 * backend is in rotation. Rendezvous (highest random weight) hashing means a
 * backend leaving moves only its own clients, and one joining takes only its
 * share from the others.
 */
import { definePlugin, fnv1a32, mix32, type Candidate, type StrategyDefinition } from '../src/index.js';

const TWO_POW_32 = 4294967296;

/** `fnv1a32` of every candidate's URL, in order: what `pickRendezvous` takes as `urlHashes`. */
export function hashUrls(candidates: readonly Candidate[]): Uint32Array {
  const hashes = new Uint32Array(candidates.length);
  for (let i = 0; i < candidates.length; i++) hashes[i] = fnv1a32(candidates[i]!.url);
  return hashes;
}

/**
 * Weighted rendezvous hashing: each candidate scores
 * `weight / -ln(u)`, where `u` in (0, 1) is a hash of the key and its URL,
 * and the highest score wins. With equal weights that is simply the highest
 * hash; with unequal ones each backend wins a share of keys proportional to
 * its weight. A key's winner changes only when the winner itself leaves or a
 * newcomer outscores it.
 *
 * `urlHashes[i]` must be `fnv1a32(candidates[i].url)` (see `hashUrls`); they
 * are passed in so they are computed once per candidate list, not per request.
 */
export function pickRendezvous(
  candidates: readonly Candidate[],
  keyHash: number,
  urlHashes: ArrayLike<number>,
): Candidate | undefined {
  let best: Candidate | undefined;
  let bestScore = -1;
  for (let i = 0; i < candidates.length; i++) {
    const c = candidates[i]!;
    // FNV-1a of keys that differ only in their last character (10.0.0.1,
    // 10.0.0.2) differ in few bits; mixing spreads that over all 32, so the
    // scores look independent.
    const u = (mix32(keyHash ^ urlHashes[i]!) + 0.5) / TWO_POW_32;
    const score = c.weight / -Math.log(u);
    if (score > bestScore) {
      best = c;
      bestScore = score;
    }
  }
  return best;
}

export default definePlugin({
  name: 'ip-hash',
  kind: 'strategy',
  description: 'Sends every request from one client IP to the same backend (weighted rendezvous hashing); a backend leaving moves only its own clients.',
  schema: { type: 'object', additionalProperties: false, properties: {} },
  create(_config: Record<string, never>) {
    // The core passes the same array until the candidate set changes, so the
    // URL hashes are recomputed only then.
    let hashedFor: readonly Candidate[] | undefined;
    let urlHashes: Uint32Array = new Uint32Array(0);
    return {
      pick(candidates, ctx) {
        if (candidates !== hashedFor || candidates.length !== urlHashes.length) {
          urlHashes = hashUrls(candidates);
          hashedFor = candidates;
        }
        return pickRendezvous(candidates, fnv1a32(ctx.clientIp), urlHashes);
      },
    };
  },
}) satisfies StrategyDefinition;
