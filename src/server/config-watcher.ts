/**
 * Watches lb.toml. Editors save in different ways — write in place, or write
 * a temp file and rename it over the original (vim, VS Code, `sed -i`) — so
 * the file's folder is watched and events for the file are debounced; a save
 * whose content hashes the same as what is running is ignored by the caller.
 */
import { watch, type FSWatcher } from 'chokidar';
import { basename, dirname } from 'node:path';

export class ConfigWatcher {
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly file: string,
    private readonly onChange: () => void,
    private readonly debounceMs = 150,
  ) {}

  async start(): Promise<void> {
    const name = basename(this.file);
    this.#watcher = watch(dirname(this.file), {
      ignoreInitial: true,
      depth: 0,
      // Renames over the file arrive as unlink+add; polling is not needed on Linux/macOS.
      ignored: (path: string) => path !== dirname(this.file) && basename(path) !== name,
      awaitWriteFinish: false,
    });
    this.#watcher.on('all', (_event, path) => {
      if (basename(path) !== name) return;
      clearTimeout(this.#timer);
      this.#timer = setTimeout(this.onChange, this.debounceMs);
    });
    await new Promise<void>((resolve) => this.#watcher!.once('ready', () => resolve()));
  }

  async close(): Promise<void> {
    clearTimeout(this.#timer);
    await this.#watcher?.close();
  }
}
