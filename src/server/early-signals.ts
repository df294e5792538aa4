/**
 * Signals that arrive while `lb run` is still starting. Node's default for
 * SIGTERM, SIGINT and SIGHUP is to die at once, and the traffic listener is
 * up before the admin listener and the config watcher are: a signal in
 * between would cut the requests it already took, and exit by signal rather
 * than 0. So from the first line of `lb run` they are held, and handed to
 * the graceful shutdown and the reload as soon as those exist. A second
 * SIGTERM or SIGINT while starting exits at once, as a second one does later.
 */
import os from 'node:os';

export type StopSignal = 'SIGTERM' | 'SIGINT';

export class EarlySignals {
  #stop: StopSignal | undefined;
  #reload = false;
  readonly #holdStop = (signal: StopSignal): void => {
    if (this.#stop !== undefined) process.exit(128 + os.constants.signals[signal]);
    this.#stop = signal;
  };
  readonly #holdReload = (): void => {
    this.#reload = true;
  };

  constructor() {
    process.on('SIGTERM', this.#holdStop);
    process.on('SIGINT', this.#holdStop);
    process.on('SIGHUP', this.#holdReload);
  }

  /** From now on `shutdown` and `reload` handle the signals; what came while starting is acted on now. */
  handOver(shutdown: (signal: StopSignal) => void, reload: () => void): void {
    // On before off: Node drops its signal handler when the last listener
    // goes, and a signal in that gap would kill the process or be lost.
    process.on('SIGTERM', shutdown);
    process.on('SIGINT', shutdown);
    process.on('SIGHUP', reload);
    process.off('SIGTERM', this.#holdStop);
    process.off('SIGINT', this.#holdStop);
    process.off('SIGHUP', this.#holdReload);
    if (this.#stop !== undefined) shutdown(this.#stop);
    else if (this.#reload) reload();
  }
}
