/**
 * Schema keywords beyond standard JSON Schema, for what a pattern cannot say:
 * a duration's bounds, a port's range, an address's numbers. The config
 * loader's ajv checks them. `lb schema` leaves them out (CONFIG_KEYWORDS):
 * strict validators — ajv's default — refuse a schema with unknown keywords,
 * and the patterns beside them say enough for an editor.
 */
import type { Ajv, FuncKeywordDefinition, SchemaValidateFunction } from 'ajv';
import { durationBoundsProblem, type DurationBounds } from '../units.js';
import { backendUrlProblem, listenAddressProblem } from './addresses.js';

/** A keyword on string values whose check returns what is wrong, or undefined. */
function stringKeyword(
  keyword: string,
  schemaType: 'object' | 'boolean',
  problemOf: (value: string, schema: unknown) => string | undefined,
): FuncKeywordDefinition {
  const validate: SchemaValidateFunction = (schema: unknown, data: unknown) => {
    const message = schema === false || typeof data !== 'string' ? undefined : problemOf(data, schema);
    validate.errors = message === undefined ? [] : [{ keyword, message, params: {} }];
    return message === undefined;
  };
  return { keyword, type: 'string', schemaType, errors: true, validate };
}

/** The keywords addConfigKeywords() teaches ajv: names no other JSON Schema tool knows. */
export const CONFIG_KEYWORDS = ['durationBounds', 'listenAddress', 'backendUrl'] as const;

/** `durationBounds: { min?, max? }` (see durationSchema), `listenAddress: true`, `backendUrl: true`. */
export function addConfigKeywords(ajv: Ajv): Ajv {
  ajv.addKeyword(stringKeyword('durationBounds', 'object', (value, bounds) => durationBoundsProblem(value, bounds as DurationBounds)));
  ajv.addKeyword(stringKeyword('listenAddress', 'boolean', listenAddressProblem));
  ajv.addKeyword(stringKeyword('backendUrl', 'boolean', backendUrlProblem));
  return ajv;
}
