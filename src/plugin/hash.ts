/**
 * Fast non-cryptographic string hashes for strategies that map a key to a
 * backend (rendezvous, hash rings). Stable across processes and versions:
 * instances that share no state still agree on where a key goes, so a
 * change to these functions moves every key and is a breaking change.
 * Not for anything an attacker must not be able to steer (use node:crypto).
 */

const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/**
 * FNV-1a, 32-bit, over the UTF-16 code units of `text` (its bytes, for
 * ASCII). Unsigned. Strings that differ only near the end (`10.0.0.1`,
 * `10.0.0.2`) get hashes that differ in few bits; use {@link hashString}
 * where the hash must look uniformly random.
 */
export function fnv1a32(text: string): number {
  let h = FNV_OFFSET_BASIS;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, FNV_PRIME);
  }
  return h >>> 0;
}

/**
 * murmur3's 32-bit finalizer (fmix32): spreads every input bit over all 32
 * output bits. A bijection on unsigned 32-bit integers; the result is
 * unsigned. Use it to combine hashes (`mix32(keyHash ^ urlHash)`).
 */
export function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * A well-spread unsigned 32-bit hash of `text`: `mix32(fnv1a32(text))`.
 * Similar strings (`url#1`, `url#2`) land far apart, so it suits placing
 * keys on a ring or in buckets.
 */
export function hashString(text: string): number {
  return mix32(fnv1a32(text));
}
