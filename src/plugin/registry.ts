/**
 * Finds plugin definitions by the name lb.toml gives them. Built-ins are the
 * modules in `plugins/` (a file per plugin, found by name: the core lists
 * none); anything starting with `.` or `/` is a path relative to the config
 * file; anything else is an npm package resolved from the config's folder.
 */
import { readdir, stat } from 'node:fs/promises';
import { isBuiltin } from 'node:module';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PackageNotFoundError, resolvePackage } from './package-resolver.js';
import type { PluginDefinition, PluginKind } from './types.js';

const BUILTIN_DIR = new URL('../../plugins/', import.meta.url);
const BUILTIN_NAME = /^[a-z0-9][a-z0-9-]*$/;
const KINDS: readonly PluginKind[] = ['middleware', 'strategy', 'health'];

export class PluginLoadError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PluginLoadError';
  }
}

function isPathSpecifier(name: string): boolean {
  return name.startsWith('.') || isAbsolute(name);
}

async function builtinExists(name: string): Promise<boolean> {
  if (!BUILTIN_NAME.test(name)) return false;
  try {
    return (await stat(new URL(`${name}.js`, BUILTIN_DIR))).isFile();
  } catch {
    return false;
  }
}

/** Built-in plugin names of a kind, for error messages that say what is allowed. */
export async function builtinNames(kind?: PluginKind): Promise<string[]> {
  let files: string[];
  try {
    files = await readdir(BUILTIN_DIR);
  } catch {
    return [];
  }
  const names: string[] = [];
  for (const file of files.sort()) {
    if (!file.endsWith('.js')) continue;
    const name = file.slice(0, -3);
    if (kind === undefined) {
      names.push(name);
      continue;
    }
    try {
      const def = await importDefinition(new URL(file, BUILTIN_DIR).href, name);
      if (def.kind === kind) names.push(name);
    } catch {
      // A broken built-in is reported when it is used, not while listing.
    }
  }
  return names;
}

/** Every built-in definition, for `lb schema`. */
export async function builtinDefinitions(): Promise<Map<string, PluginDefinition>> {
  const out = new Map<string, PluginDefinition>();
  for (const name of await builtinNames()) {
    out.set(name, await importDefinition(new URL(`${name}.js`, BUILTIN_DIR).href, name));
  }
  return out;
}

async function importDefinition(href: string, name: string): Promise<PluginDefinition> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(href)) as Record<string, unknown>;
  } catch (err) {
    throw new PluginLoadError(`plugin "${name}" failed to load: ${(err as Error).message}`, { cause: err });
  }
  const def = (mod.default ?? mod) as Partial<PluginDefinition>;
  if (typeof def !== 'object' || def === null || typeof def.create !== 'function' || !KINDS.includes(def.kind as PluginKind)) {
    throw new PluginLoadError(
      `plugin "${name}" is not a plugin definition: its default export must be an object with kind ('middleware' | 'strategy' | 'health') and a create(config, api) function (use definePlugin from 'switchyard')`,
    );
  }
  return def as PluginDefinition;
}

/**
 * Loads the definition named `name`. Path plugins are imported with their
 * modification time in the URL so that a reload picks up an edited file.
 */
export async function loadPlugin(name: string, configDir: string, expectedKind: PluginKind): Promise<PluginDefinition> {
  let href: string;
  if (isPathSpecifier(name)) {
    const file = resolve(configDir, name);
    let mtime: number;
    try {
      mtime = (await stat(file)).mtimeMs;
    } catch {
      throw new PluginLoadError(`plugin file ${file} does not exist: the path is relative to the config file`);
    }
    href = `${pathToFileURL(file).href}?mtime=${mtime}`;
  } else if (await builtinExists(name)) {
    href = new URL(`${name}.js`, BUILTIN_DIR).href;
  } else {
    try {
      // A Node core module name ("http", "net") is never a plugin package.
      if (isBuiltin(name)) throw new PackageNotFoundError('node core module');
      href = pathToFileURL(resolvePackage(name, configDir)).href;
    } catch (err) {
      if (!(err instanceof PackageNotFoundError)) {
        throw new PluginLoadError(`plugin "${name}" cannot be loaded: ${(err as Error).message}`, { cause: err });
      }
      const known = await builtinNames(expectedKind);
      throw new PluginLoadError(
        `unknown ${expectedKind} plugin "${name}": built-in ${expectedKind} plugins are ${known.join(', ') || '(none)'}; ` +
          'a third-party plugin is a path starting with ./ (relative to the config file) or an installed npm package',
      );
    }
  }
  const def = await importDefinition(href, name);
  if (def.kind !== expectedKind) {
    const known = await builtinNames(expectedKind);
    throw new PluginLoadError(
      `plugin "${name}" is a ${def.kind} plugin, but a ${expectedKind} plugin is needed here (built-in: ${known.join(', ')})`,
    );
  }
  return def;
}
