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

/** JSON Schema for a duration string, with a description. */
export function durationSchema(description: string, defaultValue?: string): Record<string, unknown> {
  return {
    type: 'string',
    pattern: DURATION_PATTERN,
    description: `${description} A duration such as "250ms", "5s", "2m" or "1h".`,
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
