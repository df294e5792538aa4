#!/usr/bin/env node
// Instructions per request, counted by valgrind (callgrind): the measure that
// does not move with the machine. On these shared VMs req/s drifts by 10–45%
// between rounds, which hides a 2% difference; the number of instructions a
// proxy executes per request is the same from one run to the next (±1%
// between windows of one process, whatever else the machine is doing).
//
// What it leaves out: kernel work (the same syscalls for every Node proxy
// here: one read and one write per request on each side), cache misses and
// stalls. So it ranks code paths; run.mjs says what they do in wall time.
//
//   npm run build && node bench/instructions.mjs                 # undici-minimal vs switchyard
//   node bench/instructions.mjs --plugin-cost                    # Switchyard with each plugin alone
//   node bench/instructions.mjs --targets sy-none,sy-headers --warmup 30000 --requests 5000 --windows 4
//   LB_NODE_FLAGS=--max-semi-space-size=4 node bench/instructions.mjs --targets switchyard   # with node flags, as bin/lb takes them
//
// Each target runs under `valgrind --tool=callgrind --instr-atstart=no`: it
// serves --warmup requests uninstrumented (the JIT settles), then --windows
// windows of --requests requests each with instrumentation on. The first
// window is reported but left out of the median (it still pays for tiering).
// The median also leaves out the odd window that holds a major GC, so it
// ranks code paths; the mean of windows 2–N keeps them, which is what a
// node flag that changes the garbage collector's work must be judged by
// (use more and longer windows then: a major GC comes every ~20–50k requests).
// Three node:http backends and the load (an undici Pool, 64 requests in
// flight, keep-alive) run in this process; only the proxy is counted.
// Needs Debian `valgrind`. Every process started here is stopped on exit.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { availablePlugins, binFlags, MAIN_PIPELINE, NOOP_PLUGIN, ROOT, switchyardToml } from './switchyard-config.mjs';
import { freePort } from './free-port.mjs';

const { values: opts } = parseArgs({
  options: {
    targets: { type: 'string', default: 'undici-minimal,switchyard' },
    'plugin-cost': { type: 'boolean', default: false },
    warmup: { type: 'string', default: '30000' },
    requests: { type: 'string', default: '5000' },
    windows: { type: 'string', default: '4' },
    parallel: { type: 'string', default: String(Math.max(1, os.cpus().length)) },
    connections: { type: 'string', default: '64' },
    keep: { type: 'boolean', default: false },
    'node-flags': { type: 'string', default: '' },
    help: { type: 'boolean', default: false },
  },
});
if (opts.help) {
  console.log(`usage: node bench/instructions.mjs [--targets LIST | --plugin-cost] [--warmup 30000] [--requests 5000] [--windows 4] [--parallel N]
  targets: undici-minimal, switchyard (round-robin + ${MAIN_PIPELINE.join(' + ')}), sy-none, sy-noop, sy-<plugin>, sy-a+b,
           experimental-raw-client, experimental-raw-server, experimental-raw-both (bench/peers/experimental-*.mjs)
  --node-flags F  extra node flags for every target (e.g. --perf-basic-prof: /tmp/perf-<pid>.map names JIT code,
                  for bench/callgrind-names.mjs; it also leaves isolate-*-v8.log files in the cwd)
  --keep   keep the temp dir with the callgrind dumps (cg.<target>.<pid>.<n>) for callgrind_annotate`);
  process.exit(0);
}
const WARMUP = Number(opts.warmup);
const REQUESTS = Number(opts.requests);
const WINDOWS = Number(opts.windows);
const CONNECTIONS = Number(opts.connections);
const BIN = join(ROOT, 'bin/lb');
const CLI = join(ROOT, 'dist/src/cli.js');
const MINIMAL = join(ROOT, 'bench/peers/undici-minimal.mjs');
const BODY_100 = 'switchyard-bench-'.padEnd(99, 'x') + '\n';

const EXTRA_FLAGS = opts['node-flags'].split(/\s+/).filter(Boolean);

const targetNames = opts['plugin-cost']
  ? ['sy-none', 'sy-noop', ...availablePlugins.map((p) => `sy-${p}`), `sy-${MAIN_PIPELINE.join('+')}`, 'undici-minimal']
  : opts.targets.split(',');

const children = new Set();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

const dir = mkdtempSync(join(os.tmpdir(), 'sy-instr-'));
process.on('exit', () => {
  if (opts.keep) console.error(`callgrind dumps kept in ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
});

async function startBackends() {
  const servers = [];
  for (let i = 0; i < 3; i++) {
    const server = http.createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '100' }).end(BODY_100);
    });
    server.keepAliveTimeout = 65_000;
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.push(server);
  }
  return servers;
}

/** The command line of a target, with what it is. */
function commandFor(name, port, backendUrls) {
  if (name === 'undici-minimal') return { argv: ['node', MINIMAL, String(port), ...backendUrls], note: 'node bench/peers/undici-minimal.mjs' };
  // Experiments (not production code): hand-written HTTP/1.1 client and/or server instead of undici / node:http.
  if (name.startsWith('experimental-')) {
    const file = join(ROOT, 'bench/peers', `${name}.mjs`);
    return { argv: ['node', file, String(port), ...backendUrls], note: `node bench/peers/${name}.mjs` };
  }
  const pipeline = name === 'switchyard' ? MAIN_PIPELINE : name === 'sy-none' ? [] : name.slice(3).split('+');
  for (const p of pipeline) if (p !== 'noop' && !availablePlugins.includes(p)) throw new Error(`unknown target ${name}: no plugin "${p}"`);
  const file = join(dir, `${name}.toml`);
  writeFileSync(join(dir, 'noop-plugin.mjs'), NOOP_PLUGIN);
  writeFileSync(file, switchyardToml(port, backendUrls, pipeline));
  // node with the flags bin/lb would give it, started directly so that valgrind follows one process.
  const flags = binFlags(BIN);
  return {
    argv: ['node', ...flags, CLI, 'run', '--no-watch', '--log-level', 'warn', '-c', file],
    note: `node ${flags.length ? `${flags.join(' ')} ` : ''}cli.js, round-robin${pipeline.map((p) => ` + ${p}`).join('')}`,
  };
}

async function load(pool, count) {
  let sent = 0;
  let failed = 0;
  async function worker() {
    while (sent < count) {
      sent++;
      const res = await pool.request({ path: '/', method: 'GET' });
      await res.body.dump();
      if (res.statusCode !== 200) failed++;
    }
  }
  await Promise.all(Array.from({ length: CONNECTIONS }, worker));
  if (failed > 0) throw new Error(`${failed} of ${count} requests were not answered 200`);
}

async function waitServing(port, child, log) {
  const deadline = Date.now() + 120_000; // node under valgrind starts slowly
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    const ok = await new Promise((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      });
      req.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`target on port ${port} did not serve within 120 s:\n${readFileSync(log, 'utf8').slice(-2000)}`);
}

function callgrindControl(pid, ...args) {
  const out = spawnSync('callgrind_control', [...args, String(pid)], { encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`callgrind_control ${args.join(' ')} ${pid} failed: ${out.stderr || out.stdout}`);
}

/** Instructions counted in the newest dump of `pid`. */
function lastDumpTotal(name, pid) {
  const prefix = `cg.${name}.${pid}.`;
  const dumps = readdirSync(dir)
    .filter((f) => f.startsWith(prefix))
    .sort((a, b) => Number(a.slice(prefix.length)) - Number(b.slice(prefix.length)));
  const text = readFileSync(join(dir, dumps.at(-1)), 'utf8');
  const m = /^totals: (\d+)/m.exec(text) ?? /^summary: (\d+)/m.exec(text);
  if (m === null) throw new Error(`no totals in ${dumps.at(-1)}`);
  return Number(m[1]);
}

async function measure(name, backendUrls) {
  const port = await freePort();
  const { argv: base, note } = commandFor(name, port, backendUrls);
  const argv = [base[0], ...EXTRA_FLAGS, ...base.slice(1)];
  const log = join(dir, `${name}.log`);
  const child = spawn(
    'valgrind',
    ['--tool=callgrind', '--smc-check=all-non-file', '--instr-atstart=no', `--callgrind-out-file=${join(dir, `cg.${name}.%p`)}`, ...argv],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  children.add(child);
  let stderr = '';
  child.stderr.on('data', (c) => (stderr = (stderr + c).slice(-20_000)));
  child.once('exit', () => {
    children.delete(child);
    writeFileSync(log, stderr);
  });
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: CONNECTIONS });
  try {
    await waitServing(port, child, log);
    await load(pool, WARMUP);
    const perRequest = [];
    for (let w = 0; w < WINDOWS; w++) {
      callgrindControl(child.pid, '-z');
      callgrindControl(child.pid, '-i', 'on');
      await load(pool, REQUESTS);
      callgrindControl(child.pid, '-d');
      callgrindControl(child.pid, '-i', 'off');
      perRequest.push(Math.round(lastDumpTotal(name, child.pid) / REQUESTS));
    }
    console.error(`  ${name.padEnd(24)} ${perRequest.map((n) => n.toLocaleString('en-US')).join('  ')} instructions/request`);
    return { name, note, perRequest };
  } finally {
    await pool.close();
    child.kill('SIGTERM');
  }
}

function mean(values) {
  return Math.round(values.reduce((a, b) => a + b, 0) / values.length);
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : Math.round((s[mid - 1] + s[mid]) / 2);
}

async function main() {
  if (spawnSync('callgrind_control', ['-h']).error) throw new Error('valgrind is missing: install the Debian package valgrind');
  const backends = await startBackends();
  const backendUrls = backends.map((s) => `http://127.0.0.1:${s.address().port}`);
  const command = `node bench/instructions.mjs ${process.argv.slice(2).join(' ')}`.trim();
  console.error(`${command}: ${targetNames.length} targets, ${WARMUP} warm-up requests, ${WINDOWS} windows of ${REQUESTS}`);
  const results = [];
  const queue = [...targetNames];
  const parallel = Math.max(1, Number(opts.parallel));
  await Promise.all(
    Array.from({ length: Math.min(parallel, queue.length) }, async () => {
      while (queue.length > 0) results.push(await measure(queue.shift(), backendUrls));
    }),
  );
  for (const s of backends) s.close();
  results.sort((a, b) => targetNames.indexOf(a.name) - targetNames.indexOf(b.name));

  const settled = (r) => median(r.perRequest.slice(1));
  const minimal = results.find((r) => r.name === 'undici-minimal');
  const none = results.find((r) => r.name === 'sy-none');
  const lines = [
    `\`${command}\` — ${new Date().toISOString()}, build ${spawnSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout.trim()}`,
    '',
    `| target | instructions/request (median) | mean, GC included | windows 2–${WINDOWS} (first: warming) |${minimal ? ' × undici-minimal |' : ''}${none ? ' Δ vs sy-none |' : ''} what |`,
    `|---|---:|---:|---|${minimal ? '---:|' : ''}${none ? '---:|' : ''}---|`,
  ];
  for (const r of results) {
    const value = settled(r);
    const cells = [
      r.name,
      value.toLocaleString('en-US'),
      mean(r.perRequest.slice(1)).toLocaleString('en-US'),
      `${r.perRequest.slice(1).map((n) => n.toLocaleString('en-US')).join(', ')} (${r.perRequest[0].toLocaleString('en-US')})`,
    ];
    if (minimal) cells.push((value / settled(minimal)).toFixed(3));
    if (none) cells.push(r.name.startsWith('sy-') || r.name === 'switchyard' ? `${(((value - settled(none)) / settled(none)) * 100).toFixed(1)}%` : '–');
    cells.push(r.note);
    lines.push(`| ${cells.join(' | ')} |`);
  }
  console.log(lines.join('\n'));
}

await main().catch((err) => {
  console.error(err.stack ?? err);
  process.exit(1);
});
