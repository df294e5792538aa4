/**
 * `lb run` behind a log reader that stops reading (a hung log shipper) or
 * goes away: it keeps serving, and SIGTERM still ends it — the single
 * process, and a cluster's primary with every worker. Its stdout is the
 * write end of a pipe whose reader is a `sleep` that never reads, so the
 * pipe is full after the first 64 KB of log.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startBackend } from '../../src/testing.js';
import { CLI } from '../helpers/lb-process.js';
import { LOG_BACKLOG_MAX } from '../../src/server/process-log.js';
import { request } from '../helpers/http-client.js';
import { within } from '../helpers/waiting.js';
import { alive, eventually } from '../cluster/support.js';

/** A middleware that logs 1 MB when it is created: more than any pipe holds. */
const FILLER_PLUGIN = `export default {
  name: 'filler',
  kind: 'middleware',
  schema: { type: 'object', additionalProperties: false, properties: {} },
  create(_config, api) {
    for (let i = 0; i < 64; i++) api.logger.info({ filler: 'x'.repeat(16 * 1024) }, 'filler line ' + i);
    return { handle: (ctx, next) => next() };
  },
};
`;

interface Running {
  readonly lb: ChildProcess;
  readonly reader: ChildProcess;
  readonly url: string;
  /** The worker processes' pids (none for a single process). */
  readonly workerPids: readonly number[];
  stderr(): string;
}

async function startBehindStalledReader(dir: string, backendUrl: string, workers: number): Promise<Running> {
  const port = await freePort();
  const adminPort = await freePort();
  const file = join(dir, 'lb.toml');
  await writeFile(join(dir, 'filler.mjs'), FILLER_PLUGIN);
  await writeFile(
    file,
    `[server]\nlisten = "127.0.0.1:${port}"\nworkers = ${workers}\nshutdown_grace = "2s"\n[admin]\nlisten = "127.0.0.1:${adminPort}"\n` +
      `[pools.web]\nbackends = [{ url = "${backendUrl}" }]\n[[pipeline]]\nplugin = "./filler.mjs"\n`,
  );
  const reader = spawn('sleep', ['600'], { stdio: ['pipe', 'ignore', 'ignore'] });
  // A process group of its own, so that cleanup reaches the workers too.
  const lb = spawn(process.execPath, [CLI, 'run', '-c', file, '--no-watch'], { stdio: ['ignore', reader.stdin!, 'pipe'], detached: true });
  // Only lb holds the pipe's write end now: sleep never reads it, and killing sleep breaks it.
  reader.stdin!.destroy();
  let stderr = '';
  lb.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  try {
    // Its "listening" line is in the pipe nobody reads: wait until it answers instead.
    for (;;) {
      if (lb.exitCode !== null) assert.fail(`lb exited (${lb.exitCode}) before serving: ${stderr}`);
      const answer = await request(`${url}/`).catch(() => undefined);
      if (answer !== undefined) break;
      if (Date.now() > deadline) assert.fail(`lb did not serve within 15 s: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    let workerPids: number[] = [];
    if (workers > 1) {
      const status = JSON.parse((await request(`http://127.0.0.1:${adminPort}/status`)).body) as { workers: { pid: number }[] };
      workerPids = status.workers.map((w) => w.pid);
      assert.equal(workerPids.length, workers);
    }
    return { lb, reader, url, workerPids, stderr: () => stderr };
  } catch (err) {
    killAll(lb, reader);
    throw err;
  }
}

/** SIGKILL to lb's process group (the primary and its workers) and to the reader. */
function killAll(lb: ChildProcess, reader: ChildProcess): void {
  try {
    process.kill(-lb.pid!, 'SIGKILL');
  } catch {
    // Every process of the group has exited.
  }
  reader.kill('SIGKILL');
}

async function withSetup(workers: number, run: (setup: Running) => Promise<void>): Promise<void> {
  const backend = await startBackend('b1');
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-log-reader-'));
  let running: Running | undefined;
  try {
    running = await startBehindStalledReader(dir, backend.url, workers);
    await run(running);
  } finally {
    if (running !== undefined) killAll(running.lb, running.reader);
    await backend.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Every worker process has exited (the primary waits for them, so they are gone once it has exited). */
async function assertNoWorkerLeft(pids: readonly number[]): Promise<void> {
  await eventually(`worker processes ${pids.join(', ')} gone`, 2000, async () => (pids.some(alive) ? undefined : true));
}

for (const workers of [1, 2]) {
  const what = workers === 1 ? 'lb' : `lb with workers = ${workers}`;

  test(`a log reader that stopped reading: ${what} keeps serving, and exits on SIGTERM within a few seconds`, async () => {
    await withSetup(workers, async ({ lb, url, workerPids, stderr }) => {
      for (let i = 0; i < 20; i++) assert.equal((await request(`${url}/`)).body, 'b1');
      const exited = once(lb, 'exit');
      lb.kill('SIGTERM');
      const [code] = await within(exited, 8000, `${what} did not exit within 8 s of SIGTERM with its log reader stalled: ${stderr()}`);
      assert.equal(code, 0);
      await assertNoWorkerLeft(workerPids);
    });
  });

  test(`a log reader that went away: SIGTERM still ends ${what}`, async () => {
    await withSetup(workers, async ({ lb, reader, url, workerPids, stderr }) => {
      assert.equal((await request(`${url}/`)).body, 'b1');
      const exited = once(lb, 'exit');
      lb.kill('SIGTERM');
      // Gone while lb drains its log: every write from now on fails with EPIPE.
      reader.kill('SIGKILL');
      const [code] = await within(exited, 8000, `${what} did not exit within 8 s of SIGTERM with its log reader gone: ${stderr()}`);
      assert.equal(code, 0);
      await assertNoWorkerLeft(workerPids);
    });
  });
}

/** Logs 6 MB when it is created (384 lines of 16 KB): more than the 4 MB held for a stalled reader. */
const FLOOD_PLUGIN = FILLER_PLUGIN.replace("name: 'filler'", "name: 'flood'").replace('i < 64', 'i < 384');
const FLOOD_LINES = 384;

/** A log reader that reads nothing until SIGUSR2, then copies everything to its stdout; says "ready" on stderr once it can take the signal. */
const LATE_READER = `process.on('SIGUSR2', () => process.stdin.pipe(process.stdout)); setInterval(() => {}, 1000); process.stderr.write('ready\\n');`;

for (const workers of [1, 2]) {
  const what = workers === 1 ? 'lb' : `lb with workers = ${workers}`;

  test(`a log reader that falls 4 MB behind: ${what} drops the lines past that, and says how many once the reader catches up`, async () => {
    const backend = await startBackend('b1');
    const dir = await mkdtemp(join(tmpdir(), 'switchyard-log-flood-'));
    const reader = spawn(process.execPath, ['-e', LATE_READER], { stdio: ['pipe', 'pipe', 'pipe'] });
    let lb: ChildProcess | undefined;
    try {
      // Before its handler is installed, SIGUSR2 would kill it.
      await within(once(reader.stderr!, 'data'), 10_000, 'the log reader to start');
      const port = await freePort();
      const file = join(dir, 'lb.toml');
      await writeFile(join(dir, 'flood.mjs'), FLOOD_PLUGIN);
      await writeFile(
        file,
        `[server]\nlisten = "127.0.0.1:${port}"\nworkers = ${workers}\n[pools.web]\nbackends = [{ url = "${backend.url}" }]\n[[pipeline]]\nplugin = "./flood.mjs"\n`,
      );
      lb = spawn(process.execPath, [CLI, 'run', '-c', file, '--no-watch'], { stdio: ['ignore', reader.stdin!, 'pipe'], detached: true });
      reader.stdin!.destroy();
      let stderr = '';
      lb.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
      let out = '';
      reader.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
      const url = `http://127.0.0.1:${port}`;
      await eventually(`lb serving: ${stderr}`, 15_000, async () => (await request(`${url}/`).catch(() => undefined))?.body);
      for (let i = 0; i < 4; i++) assert.equal((await request(`${url}/`)).body, 'b1', 'serving while the reader reads nothing');
      reader.kill('SIGUSR2');
      // Each worker floods as it starts, so a later worker's drops can come in a warning of their own.
      const lines = (): string[] => out.split('\n').filter((line) => line !== '');
      const count = () => {
        let kept = 0;
        let dropped = 0;
        for (const line of lines()) {
          if (line.includes('"filler line ')) kept++;
          else if (line.includes('"dropped":')) dropped += (JSON.parse(line) as { dropped: number }).dropped;
        }
        return { kept, dropped };
      };
      const state = (): string =>
        `${JSON.stringify(count())}; ${out.length} bytes read; reader exit ${reader.exitCode}; lb exit ${lb?.exitCode}; lb stderr: ${stderr}`;
      const { kept, dropped } = await eventually('every flood line read or counted as dropped', 15_000, async () => {
        const c = count();
        return c.kept + c.dropped >= FLOOD_LINES * workers ? c : undefined;
      }).catch((err: Error) => assert.fail(`${err.message}: ${state()}`));
      assert.ok(dropped > 0, 'lines were dropped');
      // Whole lines only: a dropped line is dropped whole.
      for (const line of lines()) JSON.parse(line);
      // 4 MB held and 64 KB in the pipe (a cluster's later workers may flood after the reader came back).
      if (workers === 1) assert.ok(kept <= (LOG_BACKLOG_MAX + 64 * 1024) / (16 * 1024) + 2, `${kept} flood lines came through`);
      const exited = once(lb, 'exit');
      lb.kill('SIGTERM');
      const [code] = await within(exited, 8000, `${what} did not exit within 8 s of SIGTERM: ${stderr}`);
      assert.equal(code, 0);
    } finally {
      if (lb !== undefined && lb.exitCode === null) {
        try {
          process.kill(-lb.pid!, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
      reader.kill('SIGKILL');
      await backend.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
}
