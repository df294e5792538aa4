/**
 * Watches lb.toml. Editors save in different ways — write in place, or write
 * a temp file and rename it over the original (vim, VS Code, `sed -i`) — so
 * the file's folder is watched and events for the file are debounced; a save
 * whose content hashes the same as what is running is ignored by the caller.
 *
 * A config mounted from a Kubernetes ConfigMap is a symlink through another
 * entry of the same folder (`lb.toml -> ..data/lb.toml`, `..data -> ..2026_…`),
 * and an update swaps that entry, never touching `lb.toml` itself. So when
 * the file is a relative symlink through a sibling, a swap of the sibling is
 * a save too. chokidar reports nothing for a symlink renamed over another,
 * so the folder itself is watched for that name (inotify's rename event).
 */
import { watch, type FSWatcher } from 'chokidar';
import { watch as watchFolder, type FSWatcher as FolderWatcher } from 'node:fs';
import { readlink } from 'node:fs/promises';
import { basename, dirname, isAbsolute, sep } from 'node:path';
import type { Logger } from '../plugin/types.js';
import { RepeatedWarnings } from './repeated-warnings.js';

export class ConfigWatcher {
  #watcher: FSWatcher | undefined;
  #swapWatcher: FolderWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly #warnings: RepeatedWarnings;

  constructor(
    private readonly file: string,
    private readonly onChange: () => void,
    logger: Logger,
    private readonly debounceMs = 150,
  ) {
    this.#warnings = new RepeatedWarnings(logger);
  }

  async start(): Promise<void> {
    const folder = dirname(this.file);
    const name = basename(this.file);
    this.#watcher = watch(folder, {
      ignoreInitial: true,
      depth: 0,
      // Renames over the file arrive as unlink+add; polling is not needed on Linux/macOS.
      ignored: (path: string) => path !== folder && basename(path) !== name,
      awaitWriteFinish: false,
    });
    this.#watcher.on('all', (_event, path) => {
      if (basename(path) === name) this.#changed();
    });
    // chokidar rereads the folder on its events, and that can fail (EMFILE
    // while clients hold every file descriptor, EACCES): an 'error' with no
    // listener would end the process. The watch goes on; say what may be missed.
    this.#watcher.on('error', (err) => this.#failed(err));
    const via = await symlinkSibling(this.file);
    if (via !== undefined) {
      this.#swapWatcher = watchFolder(folder, (_event, entry) => {
        if (entry === via) this.#changed();
      });
      // A folder that goes away is the file's own unlink, which chokidar reports.
      this.#swapWatcher.on('error', () => this.#swapWatcher?.close());
    }
    await new Promise<void>((resolve) => this.#watcher!.once('ready', () => resolve()));
  }

  async close(): Promise<void> {
    clearTimeout(this.#timer);
    this.#swapWatcher?.close();
    await this.#watcher?.close();
    this.#warnings.flush();
  }

  #failed(err: unknown): void {
    const { code, message } = err as NodeJS.ErrnoException;
    this.#warnings.warn(
      'LB_WATCH_FAILED',
      String(code),
      { file: this.file, code, err: message },
      `watching ${this.file} failed (${message}): a save may go unnoticed until watching recovers; send SIGHUP to reload`,
    );
  }

  #changed(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(this.onChange, this.debounceMs);
  }
}

/** `..data` for `lb.toml -> ..data/lb.toml`; undefined when the file is not a symlink through a sibling entry. */
async function symlinkSibling(file: string): Promise<string | undefined> {
  let target: string;
  try {
    target = await readlink(file);
  } catch {
    return undefined; // not a symlink (EINVAL), or gone: the file's own events are enough
  }
  if (isAbsolute(target)) return undefined;
  const first = target.split(sep)[0]!;
  return first === '' || first === '.' || first === '..' || first === target ? undefined : first;
}
