/**
 * For the cluster tests: `lb run` with `workers` > 1 as a real child process
 * group (primary + workers), its admin API, and clients that open a fresh
 * connection per request so the kernel spreads them over the workers.
 */
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, type TestBackend } from '../helpers/backends.js';
import { request, type TestResponse } from '../helpers/http-client.js';
import { startLb, type LbProcess, type LogLine, type StartLbOptions } from '../helpers/lb-process.js';

export interface WorkerRow {
  readonly id: number;
  readonly pid: number | null;
  readonly state: string;
  readonly generation: number | null;
  readonly started_at: string | null;
  readonly restarts: number;
  readonly requests: number;
  readonly answered: boolean;
}

export interface ClusterStatus {
  readonly generation: number;
  readonly reloads: { readonly applied: number; readonly refused: number };
  readonly pools: Record<
    string,
    {
      backends: {
        url: string;
        state: string;
        requests: number;
        responses: Record<'1xx' | '2xx' | '3xx' | '4xx' | '5xx', number>;
        health_checks: { passed: number; failed: number } | null;
      }[];
    }
  >;
  readonly workers: readonly WorkerRow[];
}

export interface ClusterFixture {
  readonly dir: string;
  readonly file: string;
  readonly port: number;
  readonly lb: LbProcess;
  /** `http://127.0.0.1:PORT` of the primary's admin listener. */
  readonly admin: string;
  status(): Promise<ClusterStatus>;
  /** Rewrites lb.toml (the running process reloads it). */
  write(toml: string): Promise<void>;
  /**
   * Saves lb.toml the way most editors do — a temp file renamed over it —
   * so the running process can never read it half-written.
   */
  save(toml: string): Promise<void>;
}

export type TomlFor = (port: number) => string;

/** The `[server]` and `[admin]` tables of a 2-worker cluster on `port`. */
export function clusterHead(port: number, extra = ''): string {
  return `[server]
listen = "127.0.0.1:${port}"
workers = 2
shutdown_grace = "3s"
${extra}
[admin]
listen = "127.0.0.1:0"
`;
}

export function backendList(backends: readonly TestBackend[]): string {
  return `[${backends.map((b) => `{ url = "${b.url}" }`).join(', ')}]`;
}

/**
 * Starts `lb run` from `toml(port)` in its own process group, with `files`
 * (name → text, e.g. a plugin) beside lb.toml and `env` added to its
 * environment; everything is stopped and removed after the test.
 */
export async function startCluster(
  t: { after(fn: () => Promise<void>): void },
  toml: TomlFor,
  files: Readonly<Record<string, string>> = {},
  env: StartLbOptions['env'] = {},
): Promise<ClusterFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'lb-cluster-'));
  const file = join(dir, 'lb.toml');
  let lb: LbProcess | undefined;
  t.after(async () => {
    await lb?.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const port = await freePort();
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  await writeFile(file, toml(port));
  lb = await startLb(file, [], { processGroup: true, env });
  const adminLine = await lb.waitForLog((l) => typeof l.admin === 'string', 2000);
  const admin = `http://${String(adminLine.admin)}`;
  // Until then a save could be seen twice: by the watcher and by the check made once it is ready.
  await lb.waitForLog((l) => typeof l.watching === 'string', 5000);
  return {
    dir,
    file,
    port,
    lb,
    admin,
    async status() {
      const res = await request(`${admin}/status`);
      if (res.status !== 200) throw new Error(`/status answered ${res.status}: ${res.body}`);
      return JSON.parse(res.body) as ClusterStatus;
    },
    write: (text: string) => writeFile(file, text),
    async save(text: string) {
      const temp = join(dir, `.lb.toml.${process.pid}.tmp`);
      await writeFile(temp, text);
      await rename(temp, file);
    },
  };
}

/** Sends `count` requests, `concurrency` at a time, each on a fresh connection. */
export async function spread(url: string, count: number, concurrency: number): Promise<TestResponse[]> {
  const out: TestResponse[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        next++;
        out.push(await request(url, { timeoutMs: 5000 }));
      }
    }),
  );
  return out;
}

/** Polls `check` until it returns a value (not undefined) or `deadlineMs` passes; then fails with `what`. */
export async function eventually<T>(what: string, deadlineMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const until = Date.now() + deadlineMs;
  let last: unknown;
  while (Date.now() < until) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${what}: not within ${deadlineMs}ms${last ? ` (last error: ${(last as Error).message})` : ''}`);
}

/** Log lines written by the primary process itself. */
export function primaryLines(lb: LbProcess, match: (line: LogLine) => boolean): LogLine[] {
  return lb.logs.filter((l) => l.pid === lb.child.pid && match(l));
}

/** Log lines written by worker processes (each carries `worker`, its slot id). */
export function workerLines(lb: LbProcess, match: (line: LogLine) => boolean): LogLine[] {
  return lb.logs.filter((l) => l.pid !== lb.child.pid && match(l));
}

/** Waits `ms`: only for what cannot be awaited, such as a duplicate log line that should not come. */
export function settle(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** True while a process with `pid` exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
