/**
 * Config problems as users read them: `file:line:col key.path: message`,
 * where the message says what is allowed, so the fix is obvious.
 */
import type { ErrorObject } from 'ajv';
import { DURATION_PATTERN, SIZE_PATTERN } from '../units.js';
import { positionOf, type SourcePosition } from './toml-locator.js';

export interface ConfigIssue {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** Dotted key path, e.g. `pools.web.backends[1].url` ('' for the whole file). */
  readonly keyPath: string;
  readonly message: string;
}

export class ConfigError extends Error {
  readonly issues: readonly ConfigIssue[];
  constructor(issues: readonly ConfigIssue[]) {
    super(issues.map(formatIssue).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

export function formatIssue(issue: ConfigIssue): string {
  const key = issue.keyPath === '' ? '' : ` ${issue.keyPath}:`;
  return `${issue.file}:${issue.line}:${issue.column}${key} ${issue.message}`;
}

/** `['pools','web','backends','1','url']` → `pools.web.backends[1].url`. */
export function keyPathOf(segments: readonly string[]): string {
  let out = '';
  for (const seg of segments) {
    if (/^\d+$/.test(seg)) out += `[${seg}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `${out === '' ? '' : '.'}"${seg}"`;
  }
  return out;
}

export function pointerSegments(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function describeValue(value: unknown): string {
  if (typeof value === 'string') return `the string "${value}"`;
  if (typeof value === 'number') return `the number ${value}`;
  if (typeof value === 'boolean') return `the boolean ${value}`;
  if (Array.isArray(value)) return 'an array';
  if (value === null || value === undefined) return 'nothing';
  return 'a table';
}

function expectationOf(schema: Record<string, unknown> | undefined): string | undefined {
  if (!schema) return undefined;
  if (schema.pattern === DURATION_PATTERN) return 'a duration string such as "250ms", "5s", "2m" or "1h"';
  if (schema.pattern === SIZE_PATTERN) return 'a size string such as "512KB", "10MB" or "1GB"';
  return undefined;
}

/** Turns one ajv error into a message that says what to write instead. */
function messageOf(err: ErrorObject): { extra: string[]; message: string } {
  const parent = err.parentSchema as Record<string, unknown> | undefined;
  const expected = expectationOf(parent);
  switch (err.keyword) {
    case 'additionalProperties': {
      const key = (err.params as { additionalProperty: string }).additionalProperty;
      const allowed = Object.keys((parent?.properties as object | undefined) ?? {});
      return {
        extra: [key],
        message: `unknown key "${key}"${allowed.length ? `; allowed keys here: ${allowed.join(', ')}` : ''}`,
      };
    }
    case 'required': {
      const key = (err.params as { missingProperty: string }).missingProperty;
      return { extra: [], message: `missing required key "${key}"` };
    }
    case 'enum':
      return {
        extra: [],
        message: `must be one of ${(err.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')} (got ${describeValue(err.data)})`,
      };
    case 'const':
      return { extra: [], message: `must be ${JSON.stringify((err.params as { allowedValue: unknown }).allowedValue)}` };
    case 'type':
      return {
        extra: [],
        message: `must be ${expected ?? (err.params as { type: string }).type} (got ${describeValue(err.data)})`,
      };
    case 'pattern': {
      if (expected) return { extra: [], message: `must be ${expected} (got ${describeValue(err.data)})` };
      const description = typeof parent?.description === 'string' ? ` — ${parent.description}` : '';
      return { extra: [], message: `${describeValue(err.data)} is not valid here${description}` };
    }
    case 'minProperties':
      return { extra: [], message: 'must have at least one entry' };
    case 'minItems':
      return { extra: [], message: `must list at least ${(err.params as { limit: number }).limit} item(s)` };
    default:
      return { extra: [], message: err.message ?? 'is invalid' };
  }
}

/**
 * ajv errors → issues. anyOf produces one error per branch plus a summary;
 * users want the one nearest to what they wrote, so only the summary of an
 * anyOf is kept, with its description. propertyNames is the other way
 * round: each refused key gets its own error, placed at that key, and the
 * summary ("property name must be valid") says nothing more, so it is
 * dropped.
 */
export function issuesFromAjv(
  errors: readonly ErrorObject[],
  file: string,
  positions: Map<string, SourcePosition>,
  prefix: readonly string[] = [],
): ConfigIssue[] {
  const anyOfPaths = new Set(errors.filter((e) => e.keyword === 'anyOf').map((e) => e.instancePath));
  const refusedKeyPaths = new Set(errors.filter((e) => e.propertyName !== undefined).map((e) => e.instancePath));
  const issues: ConfigIssue[] = [];
  const seen = new Set<string>();
  for (const err of errors) {
    if (err.keyword !== 'anyOf' && anyOfPaths.has(err.instancePath) && err.schemaPath.includes('/anyOf/')) continue;
    if (err.keyword === 'if') continue;
    if (err.keyword === 'propertyNames' && refusedKeyPaths.has(err.instancePath)) continue;
    let message: string;
    let extra: string[] = [];
    if (err.keyword === 'anyOf') {
      const description = (err.parentSchema as { description?: string } | undefined)?.description;
      message = `is not valid (got ${describeValue(err.data)})${description ? `; expected: ${description}` : ''}`;
    } else {
      ({ message, extra } = messageOf(err));
    }
    const segments = [...prefix, ...pointerSegments(err.instancePath), ...(err.propertyName === undefined ? [] : [err.propertyName]), ...extra];
    const pos = positionOf(positions, segments) ?? { line: 1, column: 1 };
    const issue = { file, line: pos.line, column: pos.column, keyPath: keyPathOf(segments), message };
    const key = formatIssue(issue);
    if (seen.has(key)) continue;
    seen.add(key);
    issues.push(issue);
  }
  return issues;
}

/** An issue at a key path (for checks that are not JSON Schema: references, plugins). */
export function issueAt(
  file: string,
  positions: Map<string, SourcePosition>,
  segments: readonly string[],
  message: string,
): ConfigIssue {
  const pos = positionOf(positions, segments) ?? { line: 1, column: 1 };
  return { file, line: pos.line, column: pos.column, keyPath: keyPathOf(segments), message };
}
