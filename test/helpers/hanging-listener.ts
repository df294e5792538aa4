/**
 * A port on 127.0.0.1 where connecting hangs, as with a host that drops
 * SYNs, without root: a listener in a child process that never accepts
 * (its event loop is blocked), its one-slot backlog filled by two
 * connections of ours. The kernel then drops further SYNs, so a connect
 * neither succeeds nor is refused until the connecting side gives up.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';

export interface HangingListener {
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

/** The child blocks for at most this long, then exits: no test should need a hanging port longer. */
const LIFETIME_MS = 30_000;

export async function startHangingListener(): Promise<HangingListener> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `const net = require('net'); const s = net.createServer();
       s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
         require('fs').writeSync(1, s.address().port + '\\n');
         Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ${LIFETIME_MS});
         process.exit(0);
       });`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const fillers: net.Socket[] = [];
  const close = async (): Promise<void> => {
    for (const socket of fillers) socket.destroy();
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim())));
      child.once('exit', (code) => reject(new Error(`the hanging listener exited (${code}) before listening`)));
    });
    // Linux queues backlog + 1 connections that are never accepted; these fill them.
    for (let i = 0; i < 2; i++) {
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => {});
      fillers.push(socket);
      await new Promise((resolve) => socket.once('connect', resolve));
    }
    return { port, url: `http://127.0.0.1:${port}`, close };
  } catch (err) {
    await close();
    throw err;
  }
}
