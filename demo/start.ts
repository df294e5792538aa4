/**
 * `npm start`: three demo backends on 127.0.0.1:8001-8003, then `lb run` on
 * the shipped lb.toml (as a child process, through bin/lb with its node
 * flags, exactly as a user would run it).
 *
 * Stopping it must stop everything, however it is stopped:
 * - Ctrl-C signals the terminal's whole process group. `lb` runs in a group
 *   of its own, so it gets the signal once, from here: a second copy from
 *   the terminal would make it exit at once, cutting requests in flight.
 * - `kill <npm's pid>`: npm passes SIGTERM to the `sh -c` it runs this
 *   under, and sh dies without passing it on. This process is then
 *   orphaned: seeing its parent change, it stops `lb` and the backends.
 * - The terminal closing (SIGHUP) stops them too.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startDemoBackends } from './backends.js';

const backends = await startDemoBackends([8001, 8002, 8003]);
console.log(`demo backends listening on ${backends.map((b) => `127.0.0.1:${b.port}`).join(', ')}`);

const bin = fileURLToPath(new URL('../../bin/lb', import.meta.url));
const config = fileURLToPath(new URL('../../lb.toml', import.meta.url));
// Through sh, so a copy of the tree that lost the file's exec bit still starts.
const lb = spawn('sh', [bin, 'run', '-c', config, ...process.argv.slice(2)], { stdio: 'inherit', detached: true });
console.log('Switchyard starting on http://127.0.0.1:8080 (admin http://127.0.0.1:9090) — try: curl localhost:8080');

let signalled = false;
const stop = (signal: NodeJS.Signals) => {
  signalled = true;
  lb.kill(signal); // a second one makes lb exit without waiting, as documented
};
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => stop(signal));
}
// The terminal closed: lb, in its own group, is not told, and takes SIGHUP for a reload anyway.
process.on('SIGHUP', () => stop('SIGTERM'));
const parent = process.ppid;
const orphanWatch = setInterval(() => {
  if (process.ppid !== parent && !signalled) stop('SIGTERM');
}, 250);
lb.on('exit', (code, signal) => {
  clearInterval(orphanWatch);
  for (const b of backends) b.server.close();
  process.exit(code ?? (signal === null ? 0 : 1));
});
