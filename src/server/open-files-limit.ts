/**
 * This process's soft open-files limit (ulimit -n), which the default of
 * `server.max_connections` is derived from (client-connection-limit.ts).
 * Node has no API for getrlimit; Linux shows it in /proc/self/limits.
 */
import { readFile } from 'node:fs/promises';
import { parseOpenFilesLimit } from './client-connection-limit.js';

/** The soft limit; undefined when it is unlimited, unreadable, or this is not Linux. */
export async function readOpenFilesLimit(): Promise<number | undefined> {
  if (process.platform !== 'linux') return undefined;
  try {
    return parseOpenFilesLimit(await readFile('/proc/self/limits', 'utf8'));
  } catch {
    // No /proc (a sandbox, a chroot): no limit can be derived, which is what Node does by default.
    return undefined;
  }
}
