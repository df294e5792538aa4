/**
 * The real CLI under a real file-descriptor shortage: `lb run` started under
 * `ulimit -n`, and client connections held open until it has no descriptor
 * left (a new connection is closed unanswered: libuv accepts and drops it).
 * Every connection to a backend then fails with EMFILE — a local resource
 * error, which says nothing about the backend: health checks must not take
 * it down, and requests must not be blamed on it (passive detection), so it
 * serves at once when the shortage ends.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBackend } from '../../src/testing.js';
import { startCheckedBackend, waitFor } from '../health/support.js';
import { startLb, type LbProcess, type LogLine } from '../helpers/lb-process.js';
import { parseResponses, type RawResponse } from '../helpers/raw-http.js';
import { within } from '../helpers/waiting.js';

/** Low enough that a hundred-odd idle clients exhaust it. */
const OPEN_FILES_LIMIT = 128;
/** More connections than OPEN_FILES_LIMIT could ever hold: a bound, should they never be refused. */
const MAX_HELD = 4 * OPEN_FILES_LIMIT;
/**
 * Keys for the [server] table. The default limit on client connections,
 * derived from the open-files limit, keeps clients from taking every
 * descriptor: set far above OPEN_FILES_LIMIT, it lets them, as it would an
 * operator who set it too high.
 */
const SERVER_KEYS = `max_connections = ${100 * OPEN_FILES_LIMIT}`;

/** Routed to the pool; anything else is answered 404 by the proxy itself, without a backend. */
const TO_BACKEND = 'GET /app HTTP/1.1\r\nHost: lb.test\r\n\r\n';
const UNROUTED = 'GET /held HTTP/1.1\r\nHost: lb.test\r\n\r\n';

/** A client connection kept open, on which requests are sent one at a time. */
class KeptConnection {
  #text = '';
  #closed = false;
  #wake: (() => void) | undefined;

  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.#text += chunk;
      this.#wake?.();
    });
    socket.on('close', () => {
      this.#closed = true;
      this.#wake?.();
    });
    socket.on('error', () => {});
  }

  static open(port: number): KeptConnection {
    return new KeptConnection(net.connect(port, '127.0.0.1'));
  }

  /** Sends `request` and resolves with its response, or undefined when the connection was closed before one came. */
  ask(request: string, timeoutMs = 5000): Promise<RawResponse | undefined> {
    this.#text = '';
    this.socket.write(request);
    const answer = new Promise<RawResponse | undefined>((resolve) => {
      const check = () => {
        const [response] = parseResponses(this.#text);
        if (response === undefined && !this.#closed) return;
        this.#wake = undefined;
        resolve(response);
      };
      this.#wake = check;
      check();
    });
    return within(answer, timeoutMs, `no answer to ${request.split('\r\n')[0]} within ${timeoutMs}ms`);
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * Opens client connections, each answered once (so the proxy accepted it and
 * holds a descriptor for it), until one is closed unanswered: the proxy has
 * no descriptor left. The answered ones are added to `held`.
 */
async function exhaustDescriptors(port: number, held: KeptConnection[]): Promise<void> {
  while (held.length < MAX_HELD) {
    const connection = KeptConnection.open(port);
    const response = await connection.ask(UNROUTED);
    if (response === undefined) {
      connection.close();
      return;
    }
    assert.equal(response.status, 404);
    held.push(connection);
  }
  throw new Error(`${MAX_HELD} client connections held and the proxy still accepts more: is its open-files limit not ${OPEN_FILES_LIMIT}?`);
}

/** A new connection the proxy answers once the held ones are let go (it may drop a few until it has closed theirs). */
async function acceptedConnection(port: number): Promise<KeptConnection> {
  for (let tries = 0; tries < 50; tries++) {
    const connection = KeptConnection.open(port);
    if ((await connection.ask(UNROUTED)) !== undefined) return connection;
    connection.close();
  }
  throw new Error('the proxy did not answer on a new connection after the held ones were closed');
}

function config(backendUrl: string, poolKeys: string): string {
  return `
[server]
listen = "127.0.0.1:0"
${SERVER_KEYS}
[admin]
listen = "127.0.0.1:0"
[pools.web]
backends = [{ url = "${backendUrl}" }]
${poolKeys}
[[routes]]
match = { path_prefix = "/app" }
pool = "web"
`;
}

interface Shortage {
  readonly lb: LbProcess;
  readonly held: KeptConnection[];
  readonly adminPort: number;
  /** The folder of its lb.toml. */
  readonly dir: string;
}

/** `lb run` under OPEN_FILES_LIMIT with `toml`; everything it and the test open is closed when the test ends, failed or not. */
async function startUnderLimit(t: TestContext, toml: string, watch = false): Promise<Shortage> {
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-shortage-'));
  const held: KeptConnection[] = [];
  let lb: LbProcess | undefined;
  t.after(async () => {
    for (const connection of held) connection.close();
    await lb?.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const file = join(dir, 'lb.toml');
  await writeFile(file, toml);
  lb = await startLb(file, [...(watch ? [] : ['--no-watch']), '--log-level', 'info'], { openFilesLimit: OPEN_FILES_LIMIT });
  const admin = await lb.waitForLog((l) => typeof l.admin === 'string');
  return { lb, held, adminPort: Number(String(admin.admin).split(':').pop()), dir };
}

async function backendStatus(connection: KeptConnection, url: string): Promise<any> {
  const response = await connection.ask('GET /status HTTP/1.1\r\nHost: admin.test\r\n\r\n');
  assert.equal(response?.status, 200, 'the admin connection answers');
  return JSON.parse(response!.body).pools.web.backends.find((b: { url: string }) => b.url === url);
}

const isStateChange = (l: LogLine) => typeof l.from === 'string' && typeof l.to === 'string';

/** Active checks /status counts for a backend, whatever their result (`inconclusive` is absent before this change). */
const probesMade = (status: any): number => status.health_checks.passed + status.health_checks.failed + (status.health_checks.inconclusive ?? 0);

test('out of descriptors, http checks are inconclusive: the backend never goes down, and serves at once when clients let go', { timeout: 30_000 }, async (t) => {
  const backend = await startCheckedBackend('b1');
  t.after(() => backend.close());
  // healthy_after = 2: had the backend gone down, it would answer 503 for at least one interval after the shortage.
  const health = '[pools.web.health]\nchecker = "http"\npath = "/healthz"\ninterval = "100ms"\nunhealthy_after = 2\nhealthy_after = 2';
  const { lb, held, adminPort } = await startUnderLimit(t, config(backend.url, health));
  await lb.waitForLog((l) => l.backend === backend.url && l.to === 'up');
  // Opened before the shortage, so /status can be read during it.
  const admin = KeptConnection.open(adminPort);
  t.after(() => admin.close());
  // Probes made that never reached the backend: they met the shortage. (Probes are
  // counted by the backend first, so read before /status: a probe in between is not
  // taken for one that met the shortage.)
  const probesBefore = backend.probes;
  const before = await backendStatus(admin, backend.url);
  assert.equal(before.state, 'up');
  const unreached = (status: any) => probesMade(status) - probesMade(before) - (backend.probes - probesBefore);
  const upWithUnreached = async (count: number) => {
    const status = await backendStatus(admin, backend.url);
    assert.equal(status.state, 'up', `the backend left rotation: ${JSON.stringify(status)}`);
    return unreached(status) >= count && status;
  };

  // A probe in flight while the last descriptor was taken frees one when it ends: take that one too.
  for (let round = 1; ; round++) {
    await exhaustDescriptors(lb.port, held);
    try {
      await waitFor('a probe to meet the shortage', () => upWithUnreached(1), 1000, 20);
      break;
    } catch (err) {
      if (round === 3 || err instanceof assert.AssertionError) throw err;
    }
  }
  // Several intervals out of descriptors, the backend up all along.
  const during = await waitFor('eight probes to meet the shortage', () => upWithUnreached(8), 5000, 50);
  assert.equal(during.health_checks.failed, before.health_checks.failed, 'no probe failed');
  assert.ok(during.health_checks.inconclusive >= 8, JSON.stringify(during.health_checks));
  assert.equal(during.reason, before.reason);
  assert.deepEqual(
    lb.logs.filter((l) => isStateChange(l) && l.backend === backend.url).map((l) => l.msg),
    [`pool web backend ${backend.url}: unknown → up (status 200)`],
    'no "→ down" line',
  );
  const isInconclusive = (l: LogLine) => l.err === 'EMFILE' && l.msg.startsWith(`health check of ${backend.url} could not run`);
  await lb.waitForLog(isInconclusive);
  const warnings = lb.logs.filter(isInconclusive);
  assert.equal(warnings.length, 1, 'logged once, the repeats counted');
  assert.match(warnings[0]!.msg, /out of file descriptors \(EMFILE\); raise its open-files limit \(ulimit -n, or LimitNOFILE= in its systemd unit\) or lower the number of client connections$/);

  for (const connection of held.splice(0)) connection.close();
  const client = await acceptedConnection(lb.port);
  t.after(() => client.close());
  const response = await client.ask(TO_BACKEND);
  assert.equal(response?.status, 200, `the first request after the shortage: ${response?.status} ${response?.body}`);
  assert.equal(response.body, 'b1');

  await lb.stop();
  const counted = lb.logs.filter(isInconclusive);
  assert.ok(counted.length >= 2 && (counted.at(-1)!.repeated as number) >= 7, `the repeats were counted: ${JSON.stringify(counted.slice(1))}`);
});

test('out of descriptors, a request gets 503 LB_ERR_LOCAL_RESOURCES, its backend is not blamed, and serves at once when clients let go', { timeout: 30_000 }, async (t) => {
  const backend = await startBackend('b1');
  t.after(() => backend.close());
  // No health table: nothing but passive detection judges the backend, and nothing else opens descriptors.
  const { lb, held, adminPort } = await startUnderLimit(t, config(backend.url, 'passive_failures = 3'));
  await exhaustDescriptors(lb.port, held);
  const client = held[0]!;

  const first = await client.ask(TO_BACKEND);
  assert.equal(first?.status, 503, `${first?.status} ${first?.body}`);
  assert.equal(first.headers['retry-after'], '1');
  assert.equal(first.body, '503 The load balancer is short of resources; try again shortly.\n');
  const json = await client.ask('GET /app HTTP/1.1\r\nHost: lb.test\r\nAccept: application/json\r\n\r\n');
  assert.deepEqual(JSON.parse(json!.body), { error: 'LB_ERR_LOCAL_RESOURCES', message: 'The load balancer is short of resources; try again shortly.', status: 503 });
  // More than passive_failures in a row: were they blamed on the backend, it would be down ("No healthy backend").
  for (let i = 0; i < 4; i++) {
    const again = await client.ask(TO_BACKEND);
    assert.equal(again?.body, '503 The load balancer is short of resources; try again shortly.\n');
  }

  const isShortage = (l: LogLine) => l.code === 'LB_ERR_LOCAL_RESOURCES';
  const warning = await lb.waitForLog(isShortage);
  assert.equal(warning.level, 40);
  assert.equal(warning.backend, backend.url);
  assert.equal(
    warning.msg,
    `no connection to backend ${backend.url} could be opened, and the backend is not blamed: this process is out of file descriptors (EMFILE); ` +
      'raise its open-files limit (ulimit -n, or LimitNOFILE= in its systemd unit) or lower the number of client connections',
  );
  assert.equal(lb.logs.filter(isShortage).length, 1, 'logged once, the repeats counted');
  assert.deepEqual(lb.logs.filter(isStateChange), [], 'no state change');

  for (const connection of held.splice(0)) connection.close();
  const fresh = await acceptedConnection(lb.port);
  t.after(() => fresh.close());
  const response = await fresh.ask(TO_BACKEND);
  assert.equal(response?.status, 200, `the first request after the shortage: ${response?.status} ${response?.body}`);
  assert.equal(response.body, 'b1');
  const admin = KeptConnection.open(adminPort);
  t.after(() => admin.close());
  const status = await backendStatus(admin, backend.url);
  assert.equal(status.state, 'unknown');
  assert.equal(status.failures, 0, 'no request failed at the backend');
});

test('out of descriptors, the config watcher cannot reread its folder: a warning, lb keeps serving, and a save applies once clients let go', { timeout: 30_000 }, async (t) => {
  const backend = await startBackend('b1');
  t.after(() => backend.close());
  const { lb, held, dir } = await startUnderLimit(t, config(backend.url, ''), true);
  await lb.waitForLog((l) => typeof l.watching === 'string');
  await exhaustDescriptors(lb.port, held);

  // Anything new in the folder makes chokidar read it again, which fails with EMFILE.
  // That 'error' had no listener, and ended the process.
  await writeFile(join(dir, 'notes.txt'), 'not the config\n');
  const warning = await lb.waitForLog((l) => l.code === 'EMFILE' && /^watching .* failed/.test(l.msg), 5000);
  assert.equal(warning.level, 40);
  assert.match(warning.msg, /a save may go unnoticed until watching recovers; send SIGHUP to reload$/);
  assert.equal((await held[0]!.ask(UNROUTED))?.status, 404, 'still answering on the connections it holds');
  assert.equal(lb.child.exitCode, null, 'still running');

  for (const connection of held.splice(0)) connection.close();
  const from = lb.logs.length;
  await writeFile(join(dir, 'lb.toml'), config(backend.url, 'passive_failures = 4'));
  const live = await lb.waitForLog((l) => /^configuration generation 2 is live/.test(l.msg), 5000, from);
  assert.equal(live.generation, 2);
});
