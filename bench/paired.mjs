#!/usr/bin/env node
// Paired rounds for a small difference: the minimal undici proxy and one or
// more Switchyard builds, all running at once on core 0 (only the one under
// load is busy), nginx (1 worker, 3 servers answering 100 B) and wrk on
// core 1; short rounds, interleaved. Each round gives req/s, p99 and the
// proxy's own user and system CPU time per request (/proc/PID/stat around
// the round); the summary gives medians and each build's per-round ratio to
// the minimal proxy — robust to the host speeding up and slowing down
// between rounds, which on a shared VM it does by more than most changes.
// bench/run.mjs is the full comparison; this is for A/B of a change.
//
//   npm run build && node bench/paired.mjs [--rounds 12] [--duration 2] [--connections 64]
//       [--build name=DIR[:VAR=value]]...
//
// A build is a compiled tree (DIR/src/cli.js; default: dist as "switchyard"),
// e.g. --build before=/tmp/old-dist --build after=dist, optionally with one
// environment variable (--build undici=dist:SWITCHYARD_BACKEND_CLIENT=undici).
// Switchyard runs round-robin + headers + retry, as in bench/run.mjs.
//
// Every process started here is stopped on exit, on error and on Ctrl-C.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { isAbsolute, join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort } from './free-port.mjs';
import { start, startNginxBackends, waitReady } from './local-processes.mjs';
import { MAIN_PIPELINE, ROOT, switchyardToml } from './switchyard-config.mjs';

const { values: opts } = parseArgs({
  options: {
    rounds: { type: 'string', default: '12' },
    duration: { type: 'string', default: '2' },
    connections: { type: 'string', default: '64' },
    build: { type: 'string', multiple: true, default: ['switchyard=dist'] },
  },
});
const ROUNDS = Number(opts.rounds);
const DURATION = Number(opts.duration);
const PROXY_CPU = '0';
const LOAD_CPU = '1';
const TICK_US = 1e6 / Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim() || 100);

const missing = ['wrk', 'nginx', 'taskset'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
if (missing.length > 0) {
  console.error(`missing: ${missing.join(', ')} (Debian: apt-get install wrk nginx-light util-linux)`);
  process.exit(1);
}

/** [user, system] CPU time of `pid` so far, in µs. */
function cpuTime(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return [Number(fields[11]) * TICK_US, Number(fields[12]) * TICK_US];
}

function wrk(port, seconds) {
  const out = spawnSync('taskset', ['-c', LOAD_CPU, 'wrk', '-t1', `-c${opts.connections}`, `-d${seconds}s`, '--latency', `http://127.0.0.1:${port}/`], {
    encoding: 'utf8',
    timeout: (seconds + 30) * 1000,
  }).stdout;
  const p99 = /^\s+99%\s+([\d.]+)(us|ms|s)$/m.exec(out);
  const errors = /Non-2xx or 3xx responses: (\d+)|Socket errors/.exec(out);
  if (errors) throw new Error(`wrk saw errors against port ${port}:\n${out}`);
  return {
    requests: Number(/(\d+) requests in/.exec(out)?.[1]),
    p99: p99 ? Number(p99[1]) * { us: 0.001, ms: 1, s: 1000 }[p99[2]] : NaN,
  };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const dir = mkdtempSync(join(os.tmpdir(), 'lb-paired-bench-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const backendPorts = [await freePort(), await freePort(), await freePort()];
const backends = backendPorts.map((p) => `http://127.0.0.1:${p}`);
await startNginxBackends(dir, backendPorts, ['taskset', '-c', LOAD_CPU]);

const targets = [];
const minimalPort = await freePort();
targets.push({ name: 'undici-minimal', port: minimalPort, child: start('taskset', ['-c', PROXY_CPU, 'node', join(ROOT, 'bench/peers/undici-minimal.mjs'), String(minimalPort), ...backends]) });
for (const spec of opts.build) {
  const [name, rest] = spec.split(/=(.*)/s);
  const [buildDir, variable] = rest.split(/:(.*)/s);
  const env = variable ? Object.fromEntries([variable.split(/=(.*)/s).slice(0, 2)]) : {};
  const port = await freePort();
  const toml = join(dir, `${name}.toml`);
  writeFileSync(toml, switchyardToml(port, backends, MAIN_PIPELINE));
  const cli = join(isAbsolute(buildDir) ? buildDir : join(ROOT, buildDir), 'src/cli.js');
  // As bin/lb starts it.
  const child = start('taskset', ['-c', PROXY_CPU, 'node', '--max-semi-space-size=8', cli, 'run', '--no-watch', '--log-level', 'warn', '-c', toml], env);
  targets.push({ name, port, child });
}
for (const t of targets) await waitReady(t.port, t.name, t.child);
for (const t of targets) wrk(t.port, 3); // warm-up: JIT, connections to the backends

console.log(`# ${new Date().toISOString()} node bench/paired.mjs --rounds ${ROUNDS} --duration ${DURATION} --connections ${opts.connections} ${opts.build.map((b) => `--build ${b}`).join(' ')}`);
console.log(`# proxies on core ${PROXY_CPU}; nginx (1 worker) and wrk (1 thread) on core ${LOAD_CPU}`);
const rows = new Map(targets.map((t) => [t.name, []]));
for (let round = 1; round <= ROUNDS; round++) {
  // Rotated each round, so no target always runs first after a pause.
  const order = targets.map((_, i) => targets[(i + round - 1) % targets.length]);
  for (const t of order) {
    const [u0, s0] = cpuTime(t.child.pid);
    const { requests, p99 } = wrk(t.port, DURATION);
    const [u1, s1] = cpuTime(t.child.pid);
    const row = { round, rps: requests / DURATION, p99, user: (u1 - u0) / requests, sys: (s1 - s0) / requests };
    rows.get(t.name).push(row);
    console.log(
      `round ${String(round).padStart(2)} ${t.name.padEnd(16)} ${row.rps.toFixed(0).padStart(7)} req/s  p99 ${row.p99.toFixed(2).padStart(6)} ms  user ${row.user.toFixed(1).padStart(5)}  sys ${row.sys.toFixed(1).padStart(5)} µs/req`,
    );
  }
}

const minimal = rows.get('undici-minimal');
console.log('\n| target | req/s | ÷ minimal, per round | rounds won | p99 ms | user µs/req | system µs/req |');
console.log('|---|---:|---:|---:|---:|---:|---:|');
for (const [name, list] of rows) {
  const ratios = list.map((r, i) => r.rps / minimal[i].rps);
  const won = name === 'undici-minimal' ? '–' : `${ratios.filter((x) => x > 1).length}/${ratios.length}`;
  console.log(
    `| ${name} | ${median(list.map((r) => r.rps)).toFixed(0)} | ${median(ratios).toFixed(3)} | ${won} | ${median(list.map((r) => r.p99)).toFixed(2)} | ${median(list.map((r) => r.user)).toFixed(1)} | ${median(list.map((r) => r.sys)).toFixed(1)} |`,
  );
}
console.log('\nMedians over the rounds; CPU time is the proxy process\'s own, from /proc/PID/stat (user and system separately).');
process.exit(0);
