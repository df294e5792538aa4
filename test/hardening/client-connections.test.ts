/**
 * server.max_connections: the traffic listener holds at most that many
 * client connections; a further one is closed at once without an answer
 * (and a warning logged once, repeats counted); a freed slot admits the
 * next. A reload changes the limit for new connections and cuts none, and
 * a listener moved to a new address keeps it. Every refusal is counted in
 * /status (`client_connections`) and /metrics, exactly: the server counts a
 * connection as it closes it, before the client can see it closed.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { startSwitchyard, type LogRecord } from '../../src/testing.js';
import { freePort, startBackend } from '../helpers/backends.js';
import { holdConnection, holdFirstAdmitted, releaseAll, requestOn, type HeldConnection } from '../helpers/held-connections.js';
import { readClientConnections } from '../helpers/client-connection-figures.js';
import { adminUrl } from '../health/support.js';
import { within } from '../helpers/waiting.js';

const toml = (backend: string, maxConnections: number, listen = '127.0.0.1:0') => `
[server]
listen = "${listen}"
max_connections = ${maxConnections}
[admin]
listen = "127.0.0.1:0"
[pools.web]
backends = [{ url = "${backend}" }]
`;

/** Opens `count` connections one after another, each sending a request. */
async function holdEach(port: number, count: number, into: HeldConnection[]): Promise<HeldConnection[]> {
  const opened: HeldConnection[] = [];
  for (let i = 0; i < count; i++) {
    const connection = await holdConnection(port);
    into.push(connection);
    opened.push(connection);
  }
  return opened;
}

const statuses = (connections: readonly HeldConnection[]) => connections.map((c) => c.status ?? 'closed unanswered');

function limitWarnings(logs: readonly LogRecord[]): LogRecord[] {
  return logs.filter((line) => line.level === 40 && line.maxConnections !== undefined);
}

/** Switchyard with `max_connections` in front of one backend; the connections held, Switchyard and the backend are closed when the test ends. */
async function startLimited(t: TestContext, maxConnections: number) {
  const backend = await startBackend('b1');
  const held: HeldConnection[] = [];
  const sy = await startSwitchyard({ toml: toml(backend.url, maxConnections), captureLogs: true });
  t.after(async () => {
    await releaseAll(held);
    await sy.close();
    await backend.close();
  });
  return { backend, held, sy };
}

/** Asserts that /status and /metrics both show `open` client connections and `refused` refusals since start. */
async function assertCounted(sy: { lb: { adminAddress: { port: number } | undefined } }, open: number, refused: number, why: string): Promise<void> {
  const read = await readClientConnections(adminUrl(sy.lb));
  assert.deepEqual(read.status, { open, refused }, `/status client_connections: ${why}`);
  assert.deepEqual(read.metrics, { open, refused }, `/metrics: ${why}`);
}

test('max_connections = 5: five are served, the sixth is closed unanswered and warned about once, a freed slot admits the next', async (t) => {
  const { backend, held, sy } = await startLimited(t, 5);
  assert.ok(
    sy.logs.some((line) => line.level === 30 && line.msg === 'accepting at most 5 client connections (server.max_connections)'),
    'the limit is logged at start',
  );

  const admitted = await holdEach(sy.port, 5, held);
  assert.deepEqual(statuses(admitted), [200, 200, 200, 200, 200]);
  const refused = await holdEach(sy.port, 3, held);
  assert.deepEqual(statuses(refused), ['closed unanswered', 'closed unanswered', 'closed unanswered']);
  assert.equal(backend.hits, 5, 'nothing of a refused connection reached the backend');

  const warnings = limitWarnings(sy.logs);
  assert.equal(warnings.length, 1, `one warning for three refusals: ${JSON.stringify(warnings)}`);
  assert.equal(warnings[0]!.maxConnections, 5);
  assert.match(warnings[0]!.msg, /5 are open.*server\.max_connections.*ulimit -n.*LimitNOFILE.*add workers or instances/);
  await assertCounted(sy, 5, 3, 'five held, three refused');
  const { families } = await readClientConnections(adminUrl(sy.lb));
  const refusedFamily = families.get('switchyard_client_connections_refused_total');
  assert.equal(refusedFamily?.type, 'counter');
  assert.match(refusedFamily?.help ?? '', /closed unanswered.*server\.max_connections.*raise server\.max_connections.*open-files limit/, 'its HELP says what to do');
  assert.equal(families.get('switchyard_client_connections_open')?.type, 'gauge');

  // The held connections are still served: they are open, not just counted.
  assert.equal(await requestOn(admitted[0]!), 200);
  admitted[0]!.socket.destroy();
  await admitted[0]!.whenClosed;
  const next = await holdFirstAdmitted(sy.port);
  held.push(next.connection);
  assert.equal(next.connection.status, 200, 'a freed slot admits a new connection');
  assert.deepEqual(statuses(await holdEach(sy.port, 1, held)), ['closed unanswered'], 'and only one');
  // Three refused before, one just now, and those refused while the slot was not counted free yet.
  const refusals = 3 + 1 + next.refused;
  await assertCounted(sy, 5, refusals, 'a freed slot taken again, and every refusal since start');

  // Closing flushes the window: the refusals after the first are counted into one line.
  await releaseAll(held);
  await sy.close();
  const counted = limitWarnings(sy.logs);
  assert.equal(counted.length, 2, JSON.stringify(counted));
  assert.equal(counted[1]!.repeated, refusals - 1, 'every refusal after the first is counted');
  assert.match(counted[1]!.msg, /more like it in the last/);
});

test('a reload raises the limit for new connections, and lowering it cuts no open connection', async (t) => {
  const { backend, held, sy } = await startLimited(t, 2);
  assert.deepEqual(statuses(await holdEach(sy.port, 3, held)), [200, 200, 'closed unanswered']);

  await sy.reload(toml(backend.url, 4));
  assert.deepEqual(sy.lb.reloads.lastApplied?.changes.settings, ['server.max_connections']);
  assert.ok(sy.logs.some((line) => line.msg === 'accepting at most 4 client connections (server.max_connections)'), 'the new limit is logged');
  assert.deepEqual(statuses(await holdEach(sy.port, 3, held)), [200, 200, 'closed unanswered'], 'two more admitted under the higher limit');

  await sy.reload(toml(backend.url, 1));
  const open = held.filter((c) => c.status !== undefined);
  assert.equal(open.length, 4);
  for (const connection of open) assert.equal(await requestOn(connection), 200, 'a connection opened before the lower limit is still served');
  assert.deepEqual(statuses(await holdEach(sy.port, 1, held)), ['closed unanswered'], 'while new ones are refused');
  await assertCounted(sy, 4, 3, 'the refusals under each of the three limits');
});

test('a listener moved to a new address by a reload keeps the limit', async (t) => {
  const { backend, held, sy } = await startLimited(t, 2);
  const before = await holdEach(sy.port, 3, held);
  assert.deepEqual(statuses(before), [200, 200, 'closed unanswered']);
  const port = await freePort();
  await sy.reload(toml(backend.url, 2, `127.0.0.1:${port}`));
  assert.equal(sy.lb.address.port, port);
  assert.deepEqual(statuses(await holdEach(port, 3, held)), [200, 200, 'closed unanswered']);
  // The old listener closes its idle connections as it is let go.
  await within(Promise.all(before.map((c) => c.whenClosed)), 5000, 'the previous listener did not close its idle connections within 5s');
  await assertCounted(sy, 2, 2, 'the refusals of the previous listener are kept with those of the new one');
});
