/**
 * Shutdown while a reload is still being built (a plugin's create() under
 * way, a new listener about to be bound): close() waits for that build,
 * which then undoes itself, so nothing of it — a listener, a pool, a
 * plugin — outlives the shutdown.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { freePort, startBackend, startSwitchyard } from '../../src/testing.js';

const SLOW_PLUGIN = `
export default {
  name: 'slow-create',
  kind: 'middleware',
  async create() {
    globalThis.__lbCreateStarted();
    await globalThis.__lbCreateGate;
    return { handle: (ctx, next) => next() };
  },
};
`;

function refuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(false)));
    socket.once('error', () => resolve(true));
  });
}

test('close() during a reload that is still creating its plugins waits for it, and the reload leaves nothing bound', async (t) => {
  const global = globalThis as Record<string, unknown>;
  let open!: () => void;
  global.__lbCreateGate = new Promise<void>((resolve) => (open = resolve));
  const started = new Promise<void>((resolve) => (global.__lbCreateStarted = resolve));
  t.after(() => {
    open();
    delete global.__lbCreateGate;
    delete global.__lbCreateStarted;
  });
  const backend = await startBackend('b');
  t.after(() => backend.close());
  const pool = `[pools.web]\nbackends = [{ url = "${backend.url}" }]\n`;
  const running = await startSwitchyard({ toml: `[server]\nlisten = "127.0.0.1:0"\n${pool}`, files: { 'slow-create.mjs': SLOW_PLUGIN } });
  t.after(() => running.close());

  const newPort = await freePort();
  const reloading = running
    .reload(`[server]\nlisten = "127.0.0.1:${newPort}"\n${pool}[[pipeline]]\nplugin = "./slow-create.mjs"\n`)
    .then(() => 'applied', (err: Error) => err.message);
  await started;
  let closed = false;
  const closing = running.lb.close(1000).then(() => (closed = true));
  // A negative check needs some time to pass: the old code's close() was done in a few I/O turns.
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(closed, false, 'close() did not finish while the reload was still being built');
  open();
  await closing;
  assert.match(await reloading, /shutting down/);
  assert.ok(await refuses(newPort), `nothing listens on the new port ${newPort}`);
});
