/**
 * A worker's output reaches the primary's: relayLines on its own (whole
 * lines, bytes as they were, a bounded hold), then the real CLI with
 * `workers = 2` — the workers' log lines on the primary's stdout, each whole
 * and JSON, their stderr on its stderr, and their last lines before a
 * shutdown not lost.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { relayLines } from '../../src/cluster/worker-output.js';
import { startBackends } from '../helpers/backends.js';
import { request } from '../helpers/http-client.js';
import { backendList, clusterHead, eventually, spread, startCluster, workerLines } from './support.js';

const relayCases: { desc: string; chunks: (string | Buffer)[]; maxHeld?: number; writes: string[] }[] = [
  { desc: 'whole lines are written as they came', chunks: ['{"a":1}\n{"b":2}\n'], writes: ['{"a":1}\n{"b":2}\n'] },
  { desc: 'a line split over reads is written once whole', chunks: ['{"a":', '1}\n'], writes: ['{"a":1}\n'] },
  { desc: 'the part after the last newline waits for its line', chunks: ['one\ntw', 'o\nthree\n'], writes: ['one\n', 'two\nthree\n'] },
  {
    desc: 'a character split between two reads is copied intact',
    chunks: [Buffer.from('"é"\n').subarray(0, 2), Buffer.from('"é"\n').subarray(2)],
    writes: ['"é"\n'],
  },
  { desc: 'more than maxHeld without a newline is written as it is', chunks: ['abcd', 'efgh', 'ij\n'], maxHeld: 6, writes: ['abcdefgh', 'ij\n'] },
  { desc: 'an unfinished last line is written with a newline at the end', chunks: ['one\nlast words'], writes: ['one\n', 'last words\n'] },
  { desc: 'nothing read, nothing written', chunks: [], writes: [] },
];

for (const { desc, chunks, maxHeld, writes } of relayCases) {
  test(`relayLines: ${desc}`, async () => {
    const from = new PassThrough();
    const written: string[] = [];
    const done = relayLines(from, (text) => written.push(text), maxHeld);
    for (const chunk of chunks) {
      from.write(chunk);
      // One read per chunk, as a pipe delivers them.
      await new Promise((resolve) => setImmediate(resolve));
    }
    from.end();
    await done;
    assert.deepEqual(written, writes);
  });
}

/**
 * A middleware that logs a 16 KB line per request (four times a pipe's
 * atomic write: two processes writing such lines to one pipe can mix them),
 * writes to stderr on /stderr, and logs lines as it is closed at shutdown —
 * and leaves a process that writes one more through the worker's stdout
 * once the worker has exited.
 */
const TALKER_PLUGIN = `import { spawn } from 'node:child_process';
export default {
  name: 'talker',
  kind: 'middleware',
  schema: { type: 'object', additionalProperties: false, properties: {} },
  create(_config, api) {
    return {
      handle(ctx, next) {
        if (ctx.path === '/stderr') process.stderr.write('talker stderr from pid ' + process.pid + '\\n');
        else api.logger.warn({ talker: 'x'.repeat(16 * 1024) }, 'talker line');
        return next();
      },
      close() {
        for (let i = 0; i < 100; i++) api.logger.warn({ talker: 'y'.repeat(1024), i }, 'talker closing');
        const late = JSON.stringify({ level: 40, pid: process.pid, msg: 'talker after exit' });
        spawn('sh', ['-c', 'sleep 0.2; echo "$0"', late], { stdio: ['ignore', 'inherit', 'ignore'] }).unref();
      },
    };
  },
};
`;

async function startTalkers(t: { after(fn: () => Promise<void>): void }) {
  const backends = await startBackends(2);
  t.after(() => Promise.all(backends.map((b) => b.close())).then(() => {}));
  return startCluster(
    t,
    (port) => `${clusterHead(port)}
[pools.web]
backends = ${backendList(backends)}
[[pipeline]]
plugin = "./talker.mjs"
`,
    { 'talker.mjs': TALKER_PLUGIN },
  );
}

test("workers = 2: the workers' log lines reach the primary's stdout, each one whole and JSON", async (t) => {
  const cluster = await startTalkers(t);
  const count = 200;
  const responses = await spread(`http://127.0.0.1:${cluster.port}/`, count, 8);
  assert.ok(responses.every((r) => r.status === 200));
  const lines = await eventually(`${count} talker lines`, 10_000, async () => {
    const found = workerLines(cluster.lb, (l) => l.msg === 'talker line');
    return found.length === count ? found : undefined;
  });
  for (const line of lines) assert.equal(line.talker, 'x'.repeat(16 * 1024));
  assert.equal(new Set(lines.map((l) => l.pid)).size, 2, 'both workers logged');
  // A line cut by another would be here: text, or JSON that does not parse.
  assert.deepEqual(cluster.lb.text, []);
});

test("workers = 2: a worker's stderr reaches the primary's stderr", async (t) => {
  const cluster = await startTalkers(t);
  let stderr = '';
  cluster.lb.child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
  assert.equal((await request(`http://127.0.0.1:${cluster.port}/stderr`)).status, 200);
  const pid = await eventually('the worker line on stderr', 5000, async () => /talker stderr from pid (\d+)\n/.exec(stderr)?.[1]);
  assert.notEqual(Number(pid), cluster.lb.child.pid, 'written by a worker');
  const workerPids = (await cluster.status()).workers.map((w) => w.pid);
  assert.ok(workerPids.includes(Number(pid)), `pid ${pid} is one of the workers ${workerPids.join(', ')}`);
});

test("workers = 2: a worker's last lines at shutdown reach the primary's stdout, even those its pipe carries after it exited", async (t) => {
  const cluster = await startTalkers(t);
  const workerPids = (await cluster.status()).workers.map((w) => w.pid);
  await cluster.lb.stop();
  assert.equal(cluster.lb.child.exitCode, 0);
  // The exit can come before the last of stdout is read here: wait for it, briefly.
  const closing = await eventually('every closing line of both workers', 2000, async () => {
    const found = workerLines(cluster.lb, (l) => l.msg === 'talker closing');
    return found.length === 200 ? found : undefined;
  });
  assert.deepEqual(new Set(closing.map((l) => l.pid)), new Set(workerPids));
  // The primary waited (within its 1 s drain) for the pipes to end, not only for the workers to exit.
  const late = workerLines(cluster.lb, (l) => l.msg === 'talker after exit');
  assert.deepEqual(new Set(late.map((l) => l.pid)), new Set(workerPids));
  assert.deepEqual(cluster.lb.text, []);
});
