import type { Candidate } from './types.js';

/**
 * Whether `a` is strictly less loaded than `b`: fewer requests in flight per
 * unit of weight (`a.activeConnections / a.weight < b.activeConnections / b.weight`).
 * Compared by cross-multiplying, so equal ratios tie exactly (`false` both
 * ways) and no division happens; weights must be positive. The building
 * block of least-connections-style strategies.
 */
export function lessLoaded(
  a: Pick<Candidate, 'activeConnections' | 'weight'>,
  b: Pick<Candidate, 'activeConnections' | 'weight'>,
): boolean {
  return a.activeConnections * b.weight < b.activeConnections * a.weight;
}
