/**
 * The quick start, as the README gives it: `npm start`, then stopped the two
 * ways users stop it — Ctrl-C (SIGINT to the terminal's whole process group)
 * and `kill` of npm's pid. Either must leave nothing behind on the demo's
 * ports, and Ctrl-C must stop the balancer gracefully (one signal, not two).
 *
 * The demo's ports are fixed (8001-8003, 8080, 9090): the tests are skipped
 * when something else listens there.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { within } from '../helpers/waiting.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const PORTS = [8001, 8002, 8003, 8080, 9090];

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function busyPorts(): Promise<number[]> {
  const open = await Promise.all(PORTS.map(accepts));
  return PORTS.filter((_, i) => open[i]);
}

interface Demo {
  readonly npm: ChildProcess;
  readonly output: () => string;
  /** The pid of `lb run`, from its "listening" log line. */
  readonly lbPid: number;
}

/** `npm start` in a process group of its own (as a terminal would run it), once 8080 answers. */
async function startDemo(t: TestContext): Promise<Demo> {
  const npm = spawn('npm', ['start'], { cwd: REPO, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  npm.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  npm.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  let lbPid = 0;
  t.after(async () => {
    // Whatever a failed test left: npm's group (npm, sh, the demo) and lb's own.
    for (const pid of [-npm.pid!, lbPid]) {
      try {
        if (pid !== 0) process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    const deadline = Date.now() + 5000;
    while ((await busyPorts()).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    const match = /"pid":(\d+)[^\n]*"msg":"Switchyard listening/.exec(output);
    if (match !== null) {
      lbPid = Number(match[1]);
      break;
    }
    if (Date.now() > deadline || npm.exitCode !== null) assert.fail(`npm start did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const res = await fetch('http://127.0.0.1:8080/');
  assert.match(await res.text(), /^Hello from backend-\d/);
  return { npm, output: () => output, lbPid };
}

async function allPortsFreed(demo: Demo): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const busy = await busyPorts();
    if (busy.length === 0) return;
    if (Date.now() > deadline) assert.fail(`still listening on ${busy.join(', ')}:\n${demo.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('npm start: kill of npm stops the balancer and the demo backends', async (t) => {
  const busy = await busyPorts();
  if (busy.length > 0) return t.skip(`ports ${busy.join(', ')} are in use`);
  const demo = await startDemo(t);

  process.kill(demo.npm.pid!, 'SIGTERM');

  await allPortsFreed(demo);
  assert.match(demo.output(), /shutdown complete/);
});

test('npm start: Ctrl-C lets a request in flight finish, then stops everything', async (t) => {
  const busy = await busyPorts();
  if (busy.length > 0) return t.skip(`ports ${busy.join(', ')} are in use`);
  const demo = await startDemo(t);

  // A request whose body is still coming when Ctrl-C is pressed.
  const socket = net.connect(8080, '127.0.0.1');
  let answer = '';
  socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
  const closed = new Promise((resolve) => socket.once('close', resolve));
  socket.on('error', () => {});
  socket.write('POST /upload HTTP/1.1\r\nHost: localhost:8080\r\nContent-Length: 5\r\n\r\nab');
  await new Promise((r) => setTimeout(r, 500));

  process.kill(-demo.npm.pid!, 'SIGINT'); // what the terminal does on Ctrl-C
  const deadline = Date.now() + 10_000;
  while (!/SIGINT: shutting down gracefully/.test(demo.output())) {
    if (Date.now() > deadline) assert.fail(`no graceful shutdown began:\n${demo.output()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  socket.write('cde');
  await within(closed, 10_000, 'the connection was not closed');

  assert.match(answer, /^HTTP\/1\.1 200 OK\r\n/, `answer: ${JSON.stringify(answer)}\n${demo.output()}`);
  assert.match(answer, /\r\nConnection: close\r\n/i);
  assert.match(answer, /Hello from backend-\d \(port \d+\): POST \/upload/);
  assert.doesNotMatch(demo.output(), /again: exiting now/);
  await allPortsFreed(demo);
});
