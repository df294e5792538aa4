/**
 * Finds the file an `import 'name'` from the config's folder would load, for
 * plugins named by npm package. `require.resolve` cannot do it: it applies
 * the `require` condition, so a package that exports only for `import` —
 * the usual shape of an ESM plugin — looked as if it were not installed.
 * Covers what plugin packages use: `exports` (a string, condition objects
 * with `import` / `node` / `default`, nested, subpaths and `*` patterns),
 * else `main`, else index.js; node_modules folders from the config's folder
 * up. Not covered: NODE_PATH, global folders, self-references.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const CONDITIONS = new Set(['import', 'node', 'default']);

export class PackageNotFoundError extends Error {}

/** `@scope/pkg/sub/path` → `{ name: '@scope/pkg', subpath: './sub/path' }`. */
export function splitSpecifier(specifier: string): { name: string; subpath: string } {
  const parts = specifier.split('/');
  const count = specifier.startsWith('@') ? 2 : 1;
  const rest = parts.slice(count).join('/');
  return { name: parts.slice(0, count).join('/'), subpath: rest === '' ? '.' : `./${rest}` };
}

/** A target of `exports` under the conditions Switchyard imports with; null when none applies. */
function resolveTarget(target: unknown, patternMatch: string | undefined): string | null {
  if (typeof target === 'string') return patternMatch === undefined ? target : target.replaceAll('*', patternMatch);
  if (Array.isArray(target)) {
    for (const item of target) {
      const resolved = resolveTarget(item, patternMatch);
      if (resolved !== null) return resolved;
    }
    return null;
  }
  if (target !== null && typeof target === 'object') {
    for (const [condition, value] of Object.entries(target)) {
      if (!CONDITIONS.has(condition)) continue;
      const resolved = resolveTarget(value, patternMatch);
      if (resolved !== null) return resolved;
    }
  }
  return null;
}

/** The `exports` entry for `subpath`, or null when the package does not export it. */
export function resolveExports(exports: unknown, subpath: string): string | null {
  const isSubpathMap =
    exports !== null && typeof exports === 'object' && !Array.isArray(exports) && Object.keys(exports).some((k) => k.startsWith('.'));
  const map = (isSubpathMap ? exports : { '.': exports }) as Record<string, unknown>;
  if (Object.hasOwn(map, subpath)) return resolveTarget(map[subpath], undefined);
  let best: { key: string; match: string } | undefined;
  for (const key of Object.keys(map)) {
    const star = key.indexOf('*');
    if (star === -1) continue;
    const prefix = key.slice(0, star);
    const suffix = key.slice(star + 1);
    if (subpath.startsWith(prefix) && subpath.endsWith(suffix) && subpath.length >= key.length - 1) {
      if (best === undefined || prefix.length > best.key.indexOf('*')) {
        best = { key, match: subpath.slice(prefix.length, subpath.length - suffix.length) };
      }
    }
  }
  return best === undefined ? null : resolveTarget(map[best.key], best.match);
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Without `exports`: the file itself, with .js / .mjs added, or its index. */
function legacyFile(path: string): string | undefined {
  for (const candidate of [path, `${path}.js`, `${path}.mjs`, join(path, 'index.js'), join(path, 'index.mjs')]) {
    if (isFile(candidate)) return candidate;
  }
  return undefined;
}

/**
 * Absolute path of the file `specifier` names, looked up from `fromDir`.
 * Throws PackageNotFoundError when no such package is installed, and a
 * plain Error saying why when it is installed but has no importable entry.
 */
export function resolvePackage(specifier: string, fromDir: string): string {
  const { name, subpath } = splitSpecifier(specifier);
  let dir = resolve(fromDir);
  while (true) {
    const packageDir = join(dir, 'node_modules', name);
    const manifest = join(packageDir, 'package.json');
    if (existsSync(manifest)) {
      const pkg = JSON.parse(readFileSync(manifest, 'utf8')) as { exports?: unknown; main?: string };
      if (pkg.exports !== undefined) {
        const target = resolveExports(pkg.exports, subpath);
        if (target === null || !target.startsWith('./')) {
          throw new Error(`package "${name}" (${packageDir}) exports nothing for "${subpath}" under the import, node or default conditions`);
        }
        return join(packageDir, target);
      }
      const file = legacyFile(join(packageDir, subpath === '.' ? (pkg.main ?? 'index.js') : subpath));
      if (file === undefined) throw new Error(`package "${name}" (${packageDir}) has no file for "${subpath}": set "exports" or "main"`);
      return file;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new PackageNotFoundError(`package "${name}" is not installed in ${fromDir} or a folder above it`);
    dir = parent;
  }
}
