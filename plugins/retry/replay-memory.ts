/**
 * Replay memory: the request-body bytes the retry plugin holds so that it
 * can send a body again, over every request in flight, capped at `limit`.
 * `max_replay_body` bounds one body; without this cap nothing bounds how
 * many are held at once, and a client could make the process hold
 * max_replay_body × concurrent requests (2,000 PUTs of 1 MB to a slow
 * backend: 2 GB of Buffers, off the V8 heap, so no heap limit stops it
 * before the OOM killer does).
 *
 * A request reserves before it reads its body, shrinks the reservation to
 * what it actually holds, and releases it when it is done with the body.
 * Pure: no I/O, no timers; reserving and releasing are a few integer
 * operations.
 */

/** Bytes one request holds against a ReplayMemory; only its ReplayMemory changes it. */
export interface ReplayReservation {
  readonly bytes: number;
}

/** The mutable form, kept inside this module so that a holder cannot change what it holds. */
interface HeldBytes {
  bytes: number;
}

export class ReplayMemory {
  #held = 0;

  /** @param limit the most bytes held at once, over every reservation */
  constructor(readonly limit: number) {}

  /** Bytes reserved now. */
  get held(): number {
    return this.#held;
  }

  /** Bytes that can still be reserved. */
  get available(): number {
    return this.limit - this.#held;
  }

  /** Reserves exactly `bytes`; undefined when fewer are left. */
  reserve(bytes: number): ReplayReservation | undefined {
    if (!(bytes >= 0) || bytes > this.limit - this.#held) return undefined;
    this.#held += bytes;
    return { bytes };
  }

  /**
   * Reserves `bytes`, or what is left when that is less (a body of unknown
   * length may still fit in it); undefined when nothing is left.
   */
  reserveUpTo(bytes: number): ReplayReservation | undefined {
    const left = this.limit - this.#held;
    if (left <= 0 && bytes > 0) return undefined;
    return this.reserve(Math.min(bytes, left));
  }

  /** Lowers `reservation` to `bytes` (what its request ended up holding); never raises it. */
  shrink(reservation: ReplayReservation, bytes: number): void {
    const held = reservation as HeldBytes;
    const to = Math.max(0, Math.min(held.bytes, bytes));
    this.#held -= held.bytes - to;
    held.bytes = to;
  }

  /** Gives `reservation`'s bytes back. Releasing it again does nothing. */
  release(reservation: ReplayReservation): void {
    this.shrink(reservation, 0);
  }
}
