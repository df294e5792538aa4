/**
 * Test helpers for plugin authors and for Switchyard's own tests, exported
 * as `switchyard/testing`: start a real Switchyard from TOML text and
 * throwaway HTTP backends on 127.0.0.1 in a few lines. Everything listens on
 * loopback on a free port; every `close()` frees what it made.
 *
 * @example
 * ```ts
 * import { startBackends, startSwitchyard } from 'switchyard/testing';
 * const backends = await startBackends(2);          // answer "b1", "b2"
 * const lb = await startSwitchyard({ toml: `
 *   [server]
 *   listen = "127.0.0.1:0"
 *   [pools.web]
 *   backends = [{ url = "${backends[0].url}" }, { url = "${backends[1].url}" }]
 * ` });
 * const res = await fetch(lb.url);                  // "b1"
 * await lb.close();
 * await Promise.all(backends.map((b) => b.close()));
 * ```
 */
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { loadConfigText } from './config/load.js';
import { locatePluginFailure } from './server/reload-history.js';
import { Switchyard, type RootLogger } from './server/switchyard.js';

/** What `startSwitchyard` starts from. */
export interface StartSwitchyardOptions {
  /** lb.toml content; use `listen = "127.0.0.1:0"` for a free port. */
  readonly toml: string;
  /**
   * Folder to write lb.toml into, so that relative plugin paths
   * (`plugin = "./my-plugin.mjs"`) resolve against it; default: a new temp
   * folder, removed by `close()`.
   */
  readonly dir?: string;
  /**
   * Extra files to write next to lb.toml before it is loaded, by name
   * relative to its folder: e.g. `{ 'my-plugin.mjs': 'export default {…}' }`.
   */
  readonly files?: Readonly<Record<string, string>>;
  /** Log level; default "silent" (set LB_TEST_LOG=debug to see logs), or "info" with `captureLogs`. */
  readonly logLevel?: string;
  /** Keep every log line as a parsed object in `logs` instead of printing it. */
  readonly captureLogs?: boolean;
}

/** One pino log line, parsed. */
export interface LogRecord {
  /** pino level: 20 debug, 30 info, 40 warn, 50 error. */
  readonly level: number;
  /** The message; the other fields are the line's structured data (`code`, `plugin`, `generation`, …). */
  readonly msg: string;
  readonly [field: string]: unknown;
}

/** A Switchyard started by `startSwitchyard`. */
export interface RunningSwitchyard {
  /** `http://127.0.0.1:PORT` of the traffic listener. */
  readonly url: string;
  /** Port of the traffic listener. */
  readonly port: number;
  /** Absolute path of the lb.toml written. */
  readonly file: string;
  /** The running instance (generation, registry, reload). */
  readonly lb: Switchyard;
  /** Captured log lines, oldest first (empty unless `captureLogs`). */
  readonly logs: LogRecord[];
  /** Rewrites lb.toml and applies it (throws ConfigError when it is invalid; the old config keeps serving). */
  reload(toml: string): Promise<void>;
  /** Shuts down (in-flight requests get 1 s) and removes the files it wrote. */
  close(): Promise<void>;
}

/** Starts a real Switchyard in this process from TOML text. */
export async function startSwitchyard(options: StartSwitchyardOptions): Promise<RunningSwitchyard> {
  const tempDir = options.dir === undefined ? await mkdtemp(join(tmpdir(), 'switchyard-')) : undefined;
  const dir = options.dir ?? tempDir!;
  const file = join(dir, tempDir ? 'lb.toml' : `lb-${process.pid}-${Date.now()}.toml`);
  const written = [file, ...Object.keys(options.files ?? {}).map((name) => join(dir, name))];
  const cleanUp = () =>
    tempDir ? rm(tempDir, { recursive: true, force: true }) : Promise.all(written.map((f) => rm(f, { force: true })));
  const logs: LogRecord[] = [];
  const level = options.logLevel ?? process.env.LB_TEST_LOG ?? (options.captureLogs ? 'info' : 'silent');
  const logger = (
    options.captureLogs
      ? pino({ level }, new Writable({ write: (line: Buffer, _enc, done) => (logs.push(JSON.parse(line.toString())), done()) }))
      : pino({ level })
  ) as unknown as RootLogger;
  let lb: Switchyard;
  try {
    for (const [name, content] of Object.entries(options.files ?? {})) await writeFile(join(dir, name), content);
    await writeFile(file, options.toml);
    const config = await loadConfigText(options.toml, file);
    try {
      lb = await Switchyard.start(config, { logger });
    } catch (err) {
      throw locatePluginFailure(err, file, options.toml);
    }
  } catch (err) {
    await cleanUp();
    throw err;
  }
  const { port } = lb.address;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    file,
    lb,
    logs,
    async reload(toml: string) {
      await writeFile(file, toml);
      await lb.reloadFile(file);
    },
    async close() {
      await lb.close(1000);
      await cleanUp();
    },
  };
}

/** A real HTTP server on 127.0.0.1 standing in for a backend. */
export interface TestBackend {
  /** Its name, the default response body. */
  readonly name: string;
  /** `http://127.0.0.1:PORT`, for `backends = [{ url = … }]`. */
  readonly url: string;
  /** Its port on 127.0.0.1. */
  readonly port: number;
  /** Requests it received so far. */
  hits: number;
  /** The request handler; replace it at any time (default: 200, `text/plain`, the name as body). */
  handler: http.RequestListener;
  /** The node:http server itself. */
  readonly server: http.Server;
  /** Cuts its connections and stops it. */
  close(): Promise<void>;
}

/** Starts one backend that answers with `name` (or runs `handler`), on `port` (default: a free one). */
export async function startBackend(name: string, handler?: http.RequestListener, port = 0): Promise<TestBackend> {
  const backend = {
    name,
    hits: 0,
    handler: handler ?? ((_req: http.IncomingMessage, res: http.ServerResponse) => {
      res.setHeader('content-type', 'text/plain');
      res.end(name);
    }),
  } as TestBackend & { url: string; port: number; server: http.Server };
  const server = http.createServer((req, res) => {
    backend.hits++;
    backend.handler(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const addr = server.address() as AddressInfo;
  backend.server = server;
  backend.port = addr.port;
  backend.url = `http://127.0.0.1:${addr.port}`;
  backend.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return backend;
}

/** Starts `count` backends named b1, b2, …, all with the same `handler` if given. */
export async function startBackends(count: number, handler?: http.RequestListener): Promise<TestBackend[]> {
  const out: TestBackend[] = [];
  for (let i = 0; i < count; i++) out.push(await startBackend(`b${i + 1}`, handler));
  return out;
}

/**
 * A port on 127.0.0.1 that was free a moment ago (nothing listens on it now).
 *
 * It comes from below the kernel's ephemeral range when that range is known
 * (Linux): a port the kernel handed out itself could be given again, before
 * the caller binds it, to any outgoing connection on the machine, and tests
 * running side by side open thousands. Each process walks that range from a
 * random start, so two processes rarely offer the same port at once.
 */
export async function freePort(): Promise<number> {
  const range = await portsBelowEphemeral();
  if (range) {
    for (let attempt = 0; attempt < 64; attempt++) {
      nextPort = nextPort === undefined || nextPort + 1 >= range.end ? range.start + Math.floor(Math.random() * (range.end - range.start)) : nextPort + 1;
      if (await canListen(nextPort)) return nextPort;
    }
  }
  return listenOn(0);
}

let nextPort: number | undefined;
let lowPorts: Promise<{ start: number; end: number } | undefined> | undefined;

/** [start, end) between 10000 and the start of the ephemeral range, or undefined where the range is unknown. */
function portsBelowEphemeral(): Promise<{ start: number; end: number } | undefined> {
  lowPorts ??= readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').then(
    (text) => {
      const low = Number(text.trim().split(/\s+/)[0]);
      return Number.isInteger(low) && low > 11000 ? { start: 10000, end: low } : undefined;
    },
    () => undefined,
  );
  return lowPorts;
}

function canListen(port: number): Promise<boolean> {
  return listenOn(port).then(
    () => true,
    () => false,
  );
}

/** Listens on 127.0.0.1:`port` (0: any), closes again, and gives the port. */
function listenOn(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const bound = (server.address() as AddressInfo).port;
      server.close(() => resolve(bound));
    });
  });
}
