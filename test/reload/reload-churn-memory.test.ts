/**
 * Memory stays bounded under reload churn. A config updated every few
 * seconds (a ConfigMap, an automation saving lb.toml) reloads hundreds of
 * thousands of times over months; where backends come and go by address
 * (autoscaled pods, each with a new IP) every reload also names backend
 * URLs never seen before. Replaced generations must become garbage, and so
 * must whatever the plugins kept for backends that left: state handed over
 * from generation to generation and keyed by backend URL (circuit-breaker's
 * circuits, weighted-round-robin's cycle) once kept every URL ever
 * configured — and, through each key (a slice of the lb.toml text it was
 * read from), that whole text.
 *
 * Measured in a child process run with --expose-gc, so the heap is read
 * after full collections and nothing of the test runner weighs in.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const TESTING = new URL('../../src/testing.js', import.meta.url).href;

const WARMUP_RELOADS = 40;
const MEASURED_RELOADS = 200;
/** lb.toml is padded with a comment this long, so a retained copy of its text is plain in the heap. */
const PADDING_BYTES = 64 * 1024;

/** For the child scripts: the heap in use after full collections, once a replaced generation has retired (shutdown_grace) and closed. */
const SETTLED_HEAP = `
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const settledHeap = async () => {
    await sleep(300);
    for (let i = 0; i < 4; i++) {
      globalThis.gc();
      await sleep(10);
    }
    return process.memoryUsage().heapUsed;
  };
`;

interface ChurnResult {
  readonly growthBytes: number;
  readonly liveGenerations: number[];
  readonly lastGeneration: number;
  readonly statuses: Record<string, number>;
}

/**
 * Every reload replaces the pool's one backend with a URL not seen before
 * and sends one request to it. The backends are the child's own, on
 * 127.0.0.1, all started before the first measurement so that their own
 * memory weighs the same at both.
 */
const CHILD = `
  import { startSwitchyard, startBackend } from ${JSON.stringify(TESTING)};
  const backends = await Promise.all(Array.from({ length: ${WARMUP_RELOADS + MEASURED_RELOADS + 1} }, (_, i) => startBackend('b' + i)));
  const padding = ('# ' + 'x'.repeat(77) + '\\n').repeat(Math.ceil(${PADDING_BYTES} / 80));
  const toml = (i) => \`[server]
listen = "127.0.0.1:0"
shutdown_grace = "100ms"

[pools.web]
strategy = "weighted-round-robin"
backends = [{ url = "\${backends[i].url}" }]

[[pipeline]]
plugin = "circuit-breaker"

\${padding}\`;
  ${SETTLED_HEAP}
  const generations = [];
  const statuses = {};
  const lb = await startSwitchyard({ toml: toml(0) });
  try {
    const reload = async (i) => {
      await lb.reload(toml(i));
      generations.push(new WeakRef(lb.lb.generation));
      const res = await fetch(lb.url);
      await res.arrayBuffer();
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
    };
    for (let i = 1; i <= ${WARMUP_RELOADS}; i++) await reload(i);
    const before = await settledHeap();
    for (let i = ${WARMUP_RELOADS} + 1; i <= ${WARMUP_RELOADS + MEASURED_RELOADS}; i++) await reload(i);
    const after = await settledHeap();
    const liveGenerations = generations.map((ref) => ref.deref()?.id).filter((id) => id !== undefined);
    process.stdout.write(JSON.stringify({ growthBytes: after - before, liveGenerations, lastGeneration: lb.lb.generation.id, statuses }));
  } finally {
    await lb.close();
    await Promise.all(backends.map((backend) => backend.close()));
  }
`;

test(`${MEASURED_RELOADS} reloads each naming a new backend URL, through circuit-breaker and weighted-round-robin: the heap does not grow with them, replaced generations are collected`, async (t) => {
  const { stdout } = await execFileAsync(process.execPath, ['--expose-gc', '--input-type=module', '-e', CHILD], {
    timeout: 20_000,
    killSignal: 'SIGKILL',
    maxBuffer: 1024 * 1024,
  });
  const result = JSON.parse(stdout) as ChurnResult;
  t.diagnostic(`heap growth over ${MEASURED_RELOADS} reloads: ${result.growthBytes} bytes; generations still reachable: ${result.liveGenerations.join(', ')}`);
  // Every request was answered by the backend just configured.
  assert.deepEqual(result.statuses, { 200: WARMUP_RELOADS + MEASURED_RELOADS });
  // The serving generation, and at most the one it replaced (the reload that built it still holds it).
  assert.ok(
    result.liveGenerations.every((id) => id >= result.lastGeneration - 1),
    `generations still reachable after ${MEASURED_RELOADS} reloads: ${result.liveGenerations.join(', ')} (serving: ${result.lastGeneration})`,
  );
  // Keeping one lb.toml text per reload would be MEASURED_RELOADS × PADDING_BYTES: 12.5 MB.
  const limit = 3 * 1024 * 1024;
  assert.ok(
    result.growthBytes < limit,
    `the heap grew by ${(result.growthBytes / 1048576).toFixed(1)} MB over ${MEASURED_RELOADS} reloads (limit ${limit / 1048576} MB): ` +
      `about ${Math.round(result.growthBytes / MEASURED_RELOADS)} bytes per reload stay reachable`,
  );
});

const ADDED_BACKENDS = 50;

/**
 * Backends added one per reload and kept (a pool scaling up): each stays in
 * the registry across reloads, and its URL must not be a slice of the
 * lb.toml text that first listed it. The same growth is measured twice, with
 * lb.toml padded to PADDING_BYTES and without; what the padding adds is what
 * the backends keep of the texts.
 */
const ACCUMULATING_CHILD = `
  import { startSwitchyard, startBackend } from ${JSON.stringify(TESTING)};
  const backends = await Promise.all(Array.from({ length: ${ADDED_BACKENDS + 1} }, (_, i) => startBackend('b' + i)));
  ${SETTLED_HEAP}
  const growth = async (paddingBytes) => {
    const padding = ('# ' + 'x'.repeat(77) + '\\n').repeat(Math.ceil(paddingBytes / 80));
    const toml = (n) => \`[server]
listen = "127.0.0.1:0"
shutdown_grace = "100ms"

[pools.web]
backends = [\${backends.slice(0, n + 1).map((b) => '{ url = "' + b.url + '" }').join(', ')}]

\${padding}\`;
    const lb = await startSwitchyard({ toml: toml(0) });
    try {
      const before = await settledHeap();
      for (let n = 1; n <= ${ADDED_BACKENDS}; n++) await lb.reload(toml(n));
      return (await settledHeap()) - before;
    } finally {
      await lb.close();
    }
  };
  try {
    // Once for what the first run compiles and caches.
    await growth(0);
    const plain = await growth(0);
    const padded = await growth(${PADDING_BYTES});
    process.stdout.write(JSON.stringify({ plain, padded }));
  } finally {
    await Promise.all(backends.map((backend) => backend.close()));
  }
`;

test(`${ADDED_BACKENDS} backends added one reload at a time keep nothing of the lb.toml texts that listed them`, async (t) => {
  const { stdout } = await execFileAsync(process.execPath, ['--expose-gc', '--input-type=module', '-e', ACCUMULATING_CHILD], {
    timeout: 20_000,
    killSignal: 'SIGKILL',
    maxBuffer: 1024 * 1024,
  });
  const { plain, padded } = JSON.parse(stdout) as { plain: number; padded: number };
  t.diagnostic(`heap growth for ${ADDED_BACKENDS} backends: ${plain} bytes with a bare lb.toml, ${padded} with one padded to ${PADDING_BYTES} bytes`);
  // Each backend keeping its text would add ADDED_BACKENDS × PADDING_BYTES: 3.2 MB.
  const limit = (ADDED_BACKENDS * PADDING_BYTES) / 5;
  assert.ok(
    padded - plain < limit,
    `a padded lb.toml added ${((padded - plain) / 1048576).toFixed(2)} MB over ${ADDED_BACKENDS} added backends (limit ${(limit / 1048576).toFixed(2)} MB): ` +
      `about ${Math.round((padded - plain) / ADDED_BACKENDS)} bytes of lb.toml text per backend stay reachable`,
  );
});
