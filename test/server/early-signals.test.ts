/**
 * EarlySignals hands SIGTERM/SIGINT/SIGHUP from its holding listeners to the
 * running ones. Node restores a signal's default action when its last
 * listener goes, so a handover that detaches before it attaches has a gap in
 * which SIGHUP kills the process (SIGTERM too, or it is lost): the cluster
 * lifecycle test caught that about once in ten runs on a loaded machine. Here
 * a child process hands over in a loop while this one sends it SIGHUP every
 * millisecond; with the gap it dies within a few signals.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const EARLY_SIGNALS = new URL('../../src/server/early-signals.js', import.meta.url).href;

const CHILD = `
import { EarlySignals } from ${JSON.stringify(EARLY_SIGNALS)};
let reloads = 0;
let previous;
// Held before 'ready', as lb run holds from its first line: the parent
// signals as soon as it reads that line, and a SIGHUP before the first
// listener is Node's default, death, whatever the handover does.
let signals = new EarlySignals();
process.stdout.write('ready\\n');
const end = Date.now() + 600;
for (let i = 1; Date.now() < end; i++) {
  if (previous !== undefined) {
    process.off('SIGTERM', previous.shutdown);
    process.off('SIGINT', previous.shutdown);
    process.off('SIGHUP', previous.reload);
  }
  previous = { shutdown: () => {}, reload: () => reloads++ };
  signals.handOver(previous.shutdown, previous.reload);
  // The next holds come before these handlers go: the only gap left is the handover's own.
  signals = new EarlySignals();
  // Let the signals queued meanwhile be delivered.
  if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
}
process.stdout.write('done ' + reloads + '\\n', () => process.exit(0));
`;

test('EarlySignals.handOver: a SIGHUP arriving during the handover reaches a listener and never kills the process', async (t) => {
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('exit', (code, signal) => resolve([code, signal])));
  let sender: NodeJS.Timeout | undefined;
  const deadline = setTimeout(() => child.kill('SIGKILL'), 10_000);
  t.after(() => {
    clearInterval(sender);
    clearTimeout(deadline);
    child.kill('SIGKILL');
  });
  let sent = 0;
  let done: string | undefined;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (line === 'ready') {
      sender = setInterval(() => {
        if (done === undefined && child.exitCode === null && child.signalCode === null && child.kill('SIGHUP')) sent++;
      }, 1);
    } else if (line.startsWith('done ')) {
      done = line;
      clearInterval(sender);
    }
  });
  const [code, signal] = await exited;
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, `the child died after ${sent} SIGHUPs`);
  const reloads = Number(done?.split(' ')[1]);
  assert.ok(sent >= 50, `only ${sent} SIGHUPs were sent: the test did not exercise the handover`);
  // Signals of one kind coalesce while one is pending, so fewer arrive than were sent; none arriving would be a lost signal.
  assert.ok(reloads > 0, `${sent} SIGHUPs sent, none reached a reload listener`);
});
