/**
 * Which changes of lb.toml are saves to apply. Editors and file systems
 * raise more than one event for one save: saving in place truncates the
 * file first (an empty lb.toml is a save in progress, never a valid one),
 * a save may leave the content as it was, and one save can be reported
 * twice — the second time it must not be refused (and logged) again.
 * Shared by a single process and a cluster's primary.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';

/** One read of lb.toml. */
export interface ConfigSave {
  readonly bytes: Buffer;
  readonly hash: string;
  /** Content and modification time: saving the same text again is a new save (it retries a refused one). */
  readonly id: string;
}

export async function readConfigSave(file: string): Promise<ConfigSave> {
  const [bytes, stats] = await Promise.all([readFile(file), stat(file)]);
  const hash = createHash('sha256').update(bytes).digest('hex');
  return { bytes, hash, id: `${hash}@${stats.mtimeMs}` };
}

export class ConfigSaves {
  #refused: string | undefined;

  /** Why `save` is not a reload (a debug line), or undefined when it is one; `servingHash` is the running configuration's. */
  whyNotReload(save: ConfigSave, servingHash: string): string | undefined {
    if (save.bytes.length === 0) return 'lb.toml is empty, probably mid-save: waiting for the next change';
    if (save.hash === servingHash) return 'lb.toml saved without changes: nothing to reload';
    if (save.id === this.#refused) return 'lb.toml unchanged since it was refused (one save seen twice): nothing to reload';
    return undefined;
  }

  /** Records how `save` ended, so that a second report of a refused save is let go. */
  decided(save: ConfigSave, applied: boolean): void {
    this.#refused = applied ? undefined : save.id;
  }
}
