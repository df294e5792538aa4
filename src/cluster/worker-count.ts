/** `server.workers` as a number of processes: "auto" is one per core this process may use. */
import os from 'node:os';

export function workerCount(workers: number | 'auto'): number {
  return workers === 'auto' ? Math.max(1, os.availableParallelism()) : workers;
}
