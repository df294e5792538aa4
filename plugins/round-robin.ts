/**
 * Round robin: every healthy backend in turn, in config order, weights ignored.
 */
import { definePlugin, type Candidate, type StrategyDefinition } from '../src/index.js';

/** Where the rotation resumes. Kept outside the candidate list because that list changes with health. */
export interface RotationCursor {
  next: number;
}

/**
 * The candidate after the one picked last time, and advances `cursor`.
 * The cursor is taken modulo the current length, so a backend leaving or
 * joining rotation shifts the turn by at most one place instead of breaking it.
 */
export function pickRoundRobin(candidates: readonly Candidate[], cursor: RotationCursor): Candidate | undefined {
  const n = candidates.length;
  if (n === 0) return undefined;
  const i = cursor.next % n;
  cursor.next = i + 1;
  return candidates[i];
}

function isCursor(value: unknown): value is RotationCursor {
  return typeof value === 'object' && value !== null && typeof (value as RotationCursor).next === 'number';
}

export default definePlugin({
  name: 'round-robin',
  kind: 'strategy',
  description: 'Sends each request to the next healthy backend in config order, ignoring weights.',
  schema: { type: 'object', additionalProperties: false, properties: {} },
  create(_config: Record<string, never>, api) {
    // On reload the rotation carries on where the previous generation left it.
    const cursor: RotationCursor = isCursor(api.inherited) ? api.inherited : { next: 0 };
    return {
      pick: (candidates) => pickRoundRobin(candidates, cursor),
      handOver: () => cursor,
    };
  },
}) satisfies StrategyDefinition;
