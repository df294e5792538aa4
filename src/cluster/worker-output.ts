/**
 * A cluster worker's stdout and stderr, copied by the primary to its own.
 *
 * A worker does not share the primary's stdout: a child spawned with
 * inherited stdio gets it in blocking mode, and since the mode belongs to
 * the pipe, the primary's writes would block too — behind a log reader that
 * stopped reading, its last write at exit would wait for that reader
 * forever (process-log.ts bounds only non-blocking writes). So each worker
 * writes to pipes of its own, and the primary copies them: stdout into its
 * own asynchronous log stream (one writer, drained or dropped at exit like
 * its own lines), stderr (a crash's stack) to its stderr. Lines are copied
 * whole, as bytes — never parsed — so lines of two workers never mix.
 */
import type { Worker } from 'node:cluster';
import type { Readable } from 'node:stream';
import { holdExitFor, writeLog } from '../server/process-log.js';

/**
 * The longest line held back waiting for its end. A worker writing more
 * without a newline (no log line is that long) has it copied as it is, so
 * its memory here stays bounded; another line may then land inside it.
 */
export const MAX_HELD_LINE = 64 * 1024;

/**
 * Copies what `from` reads to `write`, in whole lines: the part after the
 * last newline waits for the rest of its line. Resolves once `from` has
 * ended and all of it was written; an unfinished last line is written with
 * a newline, so the next writer's line starts on a line of its own.
 */
export function relayLines(from: Readable, write: (text: string) => void, maxHeld = MAX_HELD_LINE): Promise<void> {
  // Decoded, so a character split between two reads is never split in the copy.
  from.setEncoding('utf8');
  let held = '';
  from.on('data', (chunk: string) => {
    const end = chunk.lastIndexOf('\n');
    if (end === -1) {
      held += chunk;
    } else {
      write(held + chunk.slice(0, end + 1));
      held = chunk.slice(end + 1);
    }
    if (held.length > maxHeld) {
      write(held);
      held = '';
    }
  });
  // A read error ends the copy like an end would: 'close' follows either.
  from.on('error', () => {});
  return new Promise((resolve) => {
    from.once('close', () => {
      if (held !== '') write(`${held}\n`);
      held = '';
      resolve();
    });
  });
}

/**
 * Copies a worker forked with piped stdout and stderr until both end; an
 * exit of this process (exitProcess) waits for them within its grace, so a
 * worker's last lines are not lost when the primary exits right after it.
 */
export function relayWorkerOutput(worker: Worker): void {
  const { stdout, stderr } = worker.process;
  if (stdout) holdExitFor(relayLines(stdout, writeLog));
  if (stderr) holdExitFor(relayLines(stderr, (text) => process.stderr.write(text)));
}
