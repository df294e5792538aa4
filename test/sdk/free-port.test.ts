import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { test } from 'node:test';
import { freePort } from '../../src/testing.js';

const ephemeralLow = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);

// Why below the ephemeral range: there, no outgoing connection elsewhere on
// the machine can take the port between freePort() and the caller's bind.
test('freePort gives distinct ports below the ephemeral range that can be bound', { timeout: 10_000 }, async (t) => {
  const ports: number[] = [];
  for (let i = 0; i < 20; i++) ports.push(await freePort());
  assert.equal(new Set(ports).size, ports.length, `repeated: ${ports.join(', ')}`);
  for (const port of ports) assert.ok(port >= 10000 && port < ephemeralLow, `${port} is not in [10000, ${ephemeralLow})`);

  const server = net.createServer();
  t.after(() => server.close());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(ports[0], '127.0.0.1', resolve);
  });
});

test('freePort skips a port something already listens on', { timeout: 10_000 }, async (t) => {
  const taken = net.createServer();
  t.after(() => taken.close());
  // The next port in this process's walk is the last one plus 1: hold it
  // (or, if another process has it already, try again), and freePort must step over it.
  for (let attempt = 0; ; attempt++) {
    const first = await freePort();
    // At the end of the range the walk starts again somewhere else: take the next one.
    if (first + 2 >= ephemeralLow) continue;
    const held = await new Promise<boolean>((resolve) => {
      taken.once('error', () => resolve(false));
      taken.listen(first + 1, '127.0.0.1', () => resolve(true));
    });
    if (!held) {
      assert.ok(attempt < 5, 'could not hold a port next to a free one');
      continue;
    }
    assert.equal(await freePort(), first + 2);
    return;
  }
});
