/**
 * Durations ("250ms", "5s", "2m", "1h") and sizes ("512B", "16KB", "10MB",
 * "1GB", powers of 1024) as lb.toml spells them. Parsed once at config load.
 */
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const SIZE = /^(\d+(?:\.\d+)?)(B|KB|MB|GB)$/;

const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const SIZE_BYTES: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 };

/** Pattern for JSON Schema `pattern`, kept beside the parser so they cannot drift. */
export const DURATION_PATTERN = DURATION.source;
export const SIZE_PATTERN = SIZE.source;

/**
 * The longest wait a duration that becomes a timer may ask for. Node's
 * timers cannot wait past 2^31−1 ms (about 24.8 days): a longer delay fires
 * after 1 ms. This stays well below that because some waits add to the
 * configured value (health intervals get ±5% jitter, a worker gets 2 s past
 * `shutdown_grace` to exit), and it is a value users can write.
 */
export const MAX_TIMER_DURATION = '500h';

/** Milliseconds in a duration string; throws with the accepted forms when it is not one. */
export function parseDuration(text: string): number {
  const m = DURATION.exec(text);
  if (!m) throw new TypeError(`"${text}" is not a duration: write a number and a unit, e.g. "250ms", "5s", "2m", "1h"`);
  return Math.round(Number(m[1]) * DURATION_MS[m[2]!]!);
}

/** Bytes in a size string; throws with the accepted forms when it is not one. */
export function parseSize(text: string): number {
  const m = SIZE.exec(text);
  if (!m) throw new TypeError(`"${text}" is not a size: write a number and a unit, e.g. "512B", "16KB", "10MB", "1GB"`);
  return Math.floor(Number(m[1]) * SIZE_BYTES[m[2]!]!);
}

/** Inclusive limits of a duration, each written as a duration ("1ms", MAX_TIMER_DURATION). */
export interface DurationBounds {
  readonly min?: string;
  readonly max?: string;
}

/** A wait that must end and that a timer can honour: at least 1ms, at most MAX_TIMER_DURATION. */
export const TIMER_BOUNDS: DurationBounds = { min: '1ms', max: MAX_TIMER_DURATION };

/**
 * Why `text` is outside `bounds`, as a message that says what to write
 * instead; undefined when it is inside (or is not a duration at all: the
 * pattern reports that).
 */
export function durationBoundsProblem(text: string, bounds: DurationBounds): string | undefined {
  if (!DURATION.test(text)) return undefined;
  const ms = parseDuration(text);
  if (bounds.min !== undefined && ms < parseDuration(bounds.min)) {
    if (parseDuration(bounds.min) > 1) return `must be at least "${bounds.min}" (got "${text}")`;
    // "0.4ms" is 0 as well once rounded to whole milliseconds: say so.
    const rounded = Number(DURATION.exec(text)![1]) === 0 ? '' : ', which rounds to 0ms';
    return `must be longer than 0 (got "${text}"${rounded})`;
  }
  if (bounds.max !== undefined && ms > parseDuration(bounds.max)) {
    const why =
      bounds.max === MAX_TIMER_DURATION
        ? `, about ${Math.floor(parseDuration(MAX_TIMER_DURATION) / 86_400_000)} days: Node's timers cannot wait longer than 24.8 days`
        : '';
    return `must be at most "${bounds.max}"${why} (got "${text}")`;
  }
  return undefined;
}

/** `{ min: "1ms", max: "500h" }` → ' At least 1ms, at most 500h.' for a description. */
function describeBounds(bounds: DurationBounds | undefined): string {
  if (bounds === undefined) return '';
  const parts: string[] = [];
  if (bounds.min !== undefined) parts.push(`at least ${bounds.min}`);
  if (bounds.max !== undefined) parts.push(`at most ${bounds.max}`);
  if (parts.length === 0) return '';
  const text = parts.join(', ');
  return ` ${text[0]!.toUpperCase()}${text.slice(1)}.`;
}

/**
 * JSON Schema for a duration string, with a description. With `bounds`, the
 * `durationBounds` keyword (checked by the config loader) refuses values
 * outside them; give TIMER_BOUNDS to anything that ends up in a timer.
 */
export function durationSchema(description: string, defaultValue?: string, bounds?: DurationBounds): Record<string, unknown> {
  return {
    type: 'string',
    pattern: DURATION_PATTERN,
    description: `${description} A duration such as "250ms", "5s", "2m" or "1h".${describeBounds(bounds)}`,
    ...(bounds === undefined ? {} : { durationBounds: bounds }),
    ...(defaultValue === undefined ? {} : { default: defaultValue }),
  };
}

/** JSON Schema for a size string, with a description. */
export function sizeSchema(description: string, defaultValue?: string): Record<string, unknown> {
  return {
    type: 'string',
    pattern: SIZE_PATTERN,
    description: `${description} A size such as "512B", "16KB", "10MB" or "1GB" (powers of 1024).`,
    ...(defaultValue === undefined ? {} : { default: defaultValue }),
  };
}
