/**
 * Warnings about single requests (a backend that cannot be reached, a pool
 * with no healthy backend, a plugin that threw), logged without flooding.
 * During an outage every request fails the same way: one line per request
 * is megabytes a second of the same line, serialized and written by the
 * process serving the traffic — CPU taken from it — and piled up in memory
 * while a log reader falls behind (pino writes asynchronously). So
 * the first warning of a kind is logged at once; the others like it within
 * the next `windowMs` are counted, and one line at the end of the window says
 * how many there were. A kind that stops recurring is forgotten after a quiet
 * window, and logs at once when it comes back.
 *
 * Part of the public API (`import { RepeatedWarnings } from 'switchyard'`):
 * a plugin that may warn once per request does the same — one instance per
 * plugin instance, made in `create()` with `api.logger`, and `flush()` in
 * `close()`.
 */
import type { Logger } from '../plugin/types.js';

/** Kinds tracked at once; past it, new ones are told apart by their code only. */
const MAX_KINDS = 256;

interface Kind {
  /** When its window started (Date.now()). */
  since: number;
  /** Warnings like the first one since the window started, not logged yet. */
  repeated: number;
  /** The latest of those, logged for all of them at the window's end. */
  fields: object;
  message: string;
  timer: NodeJS.Timeout;
}

export class RepeatedWarnings {
  readonly #kinds = new Map<string, Kind>();

  constructor(
    private readonly logger: Logger,
    private readonly windowMs = 10_000,
  ) {}

  /**
   * Logs `message` now, or counts it when one of the same kind — the same
   * `code` and `detail` (the pool, backend, cause…; '' when there is one
   * kind per code) — was logged within the window. The line that ends a
   * window carries the latest `fields` plus `repeated` (the count).
   */
  warn(code: string, detail: string, fields: object, message: string): void {
    let kind = `${code}\0${detail}`;
    if (this.#kinds.size >= MAX_KINDS && !this.#kinds.has(kind)) kind = code;
    const known = this.#kinds.get(kind);
    if (known !== undefined) {
      known.repeated++;
      known.fields = fields;
      known.message = message;
      return;
    }
    this.logger.warn(fields, message);
    this.#open(kind, fields, message);
  }

  /** Logs what the open windows counted, and forgets them (the server is closing). */
  flush(): void {
    for (const [kind, state] of this.#kinds) {
      clearTimeout(state.timer);
      this.#report(state);
      this.#kinds.delete(kind);
    }
  }

  #open(kind: string, fields: object, message: string): void {
    const state: Kind = { since: Date.now(), repeated: 0, fields, message, timer: setTimeout(() => this.#windowEnded(kind), this.windowMs) };
    // Never what keeps a process alive.
    state.timer.unref();
    this.#kinds.set(kind, state);
  }

  #windowEnded(kind: string): void {
    const state = this.#kinds.get(kind)!;
    this.#kinds.delete(kind);
    // Still recurring: this line stands for the window, and the next one counts on.
    if (this.#report(state)) this.#open(kind, state.fields, state.message);
  }

  #report(state: Kind): boolean {
    if (state.repeated === 0) return false;
    const seconds = Math.round((Date.now() - state.since) / 100) / 10;
    this.logger.warn({ ...state.fields, repeated: state.repeated }, `${state.message} (${state.repeated} more like it in the last ${seconds}s)`);
    return true;
  }
}
