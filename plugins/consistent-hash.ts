/**
 * Consistent hashing on a ring of virtual nodes: requests with the same key
 * (client IP, a header, or a cookie) go to the same backend, and adding or
 * removing one backend of N moves only about 1/N of the keys.
 *
 * One ring holds every backend the instance has seen; a backend out of
 * rotation is skipped at lookup (the next point's owner takes its keys), as
 * nginx's `hash … consistent` does. A backend's points depend only on its
 * own URL and weight, so that gives the same answers as a ring of the
 * candidates alone, without building one: a ring has replicas × weight
 * points per backend (160 × 100 × 100 backends = 1.6 M), and building it on
 * every health change would block the event loop for a large pool.
 */
import { definePlugin, hashString, readCookie, type Candidate, type RequestContext, type StrategyDefinition } from '../src/index.js';

/** Ring points pack `hash * OWNER_SPAN + owner` into one float so one numeric sort orders both (2^32 * 2^21 < 2^53). */
const OWNER_SPAN = 2 ** 21;
/** What a ring is built from: a backend's URL names its points, its weight sets how many. */
export interface RingEntry {
  readonly url: string;
  readonly weight: number;
}

/** Sorted ring points and, for each, the index of the entry that owns it. */
export interface HashRing {
  readonly points: Uint32Array;
  readonly owners: Uint32Array;
}

/**
 * A ring with `round(replicas * weight)` points (at least 1) per entry, each
 * at `hashString("<url>#<i>")`, so a backend's points depend only on its own URL
 * and weight: adding or removing one leaves every other point in place. On the
 * rare point collision the entry earlier in the list wins, which keeps
 * lookups stable as entries before or after come and go.
 */
export function buildHashRing(entries: readonly RingEntry[], replicas: number): HashRing {
  if (entries.length > OWNER_SPAN) throw new RangeError(`a hash ring holds at most ${OWNER_SPAN} entries`);
  let size = 0;
  for (let e = 0; e < entries.length; e++) size += pointsFor(entries[e]!, replicas);
  const packed = new Float64Array(size);
  let k = 0;
  for (let e = 0; e < entries.length; e++) {
    const { url } = entries[e]!;
    const count = pointsFor(entries[e]!, replicas);
    for (let r = 0; r < count; r++) packed[k++] = hashString(`${url}#${r}`) * OWNER_SPAN + e;
  }
  packed.sort();
  const points = new Uint32Array(size);
  const owners = new Uint32Array(size);
  for (let i = 0; i < size; i++) {
    const owner = packed[i]! % OWNER_SPAN;
    owners[i] = owner;
    points[i] = (packed[i]! - owner) / OWNER_SPAN;
  }
  return { points, owners };
}

function pointsFor(entry: RingEntry, replicas: number): number {
  return Math.max(1, Math.round(replicas * entry.weight));
}

/**
 * Index (into the entries the ring was built from) of the owner of the first
 * point at or after `hash` (a key's `hashString`), wrapping past the top; -1
 * for an empty ring.
 */
export function lookupRing(ring: HashRing, hash: number): number {
  const n = ring.points.length;
  if (n === 0) return -1;
  const at = firstPointAtOrAfter(ring.points, hash);
  return ring.owners[at === n ? 0 : at]!;
}

/**
 * Like lookupRing, for a subset of the ring's entries: `slotOf[entry]` is
 * the entry's index in the subset, or -1 for an entry outside it, whose
 * points are passed over. Gives what lookupRing gives on a ring built from
 * the subset alone (in the same relative order); -1 for an empty subset.
 */
export function lookupRingAmong(ring: HashRing, hash: number, slotOf: Int32Array): number {
  const { points, owners } = ring;
  const n = points.length;
  let at = firstPointAtOrAfter(points, hash);
  for (let step = 0; step < n; step++, at++) {
    if (at === n) at = 0;
    const slot = slotOf[owners[at]!]!;
    if (slot !== -1) return slot;
  }
  return -1;
}

function firstPointAtOrAfter(points: Uint32Array, hash: number): number {
  let lo = 0;
  let hi = points.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (points[mid]! < hash) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Where a request's hash key is read from, decided once from the `key` option. */
type KeySource = 'client-ip' | 'header' | 'cookie';

function firstValue(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : value?.[0];
}

function readRequestKey(source: KeySource, name: string, ctx: RequestContext): string {
  let key: string | undefined;
  if (source === 'header') {
    key = firstValue(ctx.headers[name]);
  } else if (source === 'cookie') {
    key = readCookie(ctx.headers.cookie, name);
  }
  return key === undefined || key === '' ? ctx.clientIp : key;
}

/** A ring entry's name: its points depend on both. */
function entryKey(candidate: Candidate): string {
  return `${candidate.url}*${candidate.weight}`;
}

export interface ConsistentHashConfig {
  key: string;
  replicas: number;
}

export default definePlugin({
  name: 'consistent-hash',
  kind: 'strategy',
  description: 'Consistent hashing on a ring of virtual nodes, keyed by client IP, a header or a cookie; adding or removing one of N backends moves about 1/N of the keys.',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      key: {
        type: 'string',
        pattern: '^(client-ip|header:[A-Za-z0-9!#$%&\'*+.^_`|~-]+|cookie:[^\\s;=]+)$',
        default: 'client-ip',
        description:
          'What requests are hashed by: "client-ip", "header:NAME" (e.g. "header:X-User") or "cookie:NAME" (e.g. "cookie:session"). A request without that header or cookie is hashed by its client IP.',
      },
      replicas: {
        type: 'integer',
        minimum: 1,
        maximum: 1000,
        default: 160,
        description:
          'Virtual nodes on the ring per unit of backend weight. More spreads keys more evenly at the cost of memory and ring build time; 100-200 keeps each backend within about 10% of its fair share.',
      },
    },
  },
  create(config: ConsistentHashConfig) {
    const colon = config.key.indexOf(':');
    const prefix = colon === -1 ? config.key : config.key.slice(0, colon);
    const source: KeySource = prefix === 'header' || prefix === 'cookie' ? prefix : 'client-ip';
    // Header names are lower-case in ctx.headers; cookie names are case-sensitive.
    const name = source === 'header' ? config.key.slice(colon + 1).toLowerCase() : config.key.slice(colon + 1);
    // Every backend seen, in the order first seen (the pool's order: the first candidate set is usually all of it).
    const entries: RingEntry[] = [];
    const entryIndex = new Map<string, number>();
    let ring: HashRing = buildHashRing(entries, config.replicas);
    let slotsFor: readonly Candidate[] | undefined;
    let slotOf = new Int32Array(0);

    /** Maps the ring's entries to `candidates`; grows the ring only for a backend it has not seen. */
    function follow(candidates: readonly Candidate[]): void {
      let grew = false;
      for (let i = 0; i < candidates.length; i++) {
        const key = entryKey(candidates[i]!);
        if (entryIndex.has(key)) continue;
        entryIndex.set(key, entries.length);
        entries.push({ url: candidates[i]!.url, weight: candidates[i]!.weight });
        grew = true;
      }
      if (grew) ring = buildHashRing(entries, config.replicas);
      slotOf = new Int32Array(entries.length).fill(-1);
      for (let i = 0; i < candidates.length; i++) slotOf[entryIndex.get(entryKey(candidates[i]!))!] = i;
      slotsFor = candidates;
    }

    return {
      pick(candidates, ctx) {
        if (candidates.length === 0) return undefined;
        // Fast path: the core passes the same array until the candidate set changes.
        if (candidates !== slotsFor) follow(candidates);
        return candidates[lookupRingAmong(ring, hashString(readRequestKey(source, name, ctx)), slotOf)];
      },
    };
  },
}) satisfies StrategyDefinition;
